"""Helpers shared by the widget, watcher, kernel and browser tests (this module has no tests).

Import the fixtures by their function names (``executor_fixture``, ``watcher_fixture``): pytest
registers them as ``executor`` and ``watcher``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import test_widget_jobs

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.watcher import Watcher

cloudpickle.register_pickle_by_value(test_widget_jobs)  # jobs need not import the tests

WAIT_S = 60.0  # generous: other test runs share the 2 cores

# What a user would type: the job's class defined in the %%slurm cell, pickled by value.
JOB_SOURCE = (Path(__file__).parent / "test_widget_jobs.py").read_text()


def submission_cells(release: Path) -> list[str]:
    """Notebook cells that load the extension and submit a ``Waiter`` job with ``%%slurm``."""
    return [
        "%load_ext jupyter_slurm_ckpt",
        f"%%slurm --cluster local --folder jobs --name waiter\n{JOB_SOURCE}\n"
        f"job = Waiter()({str(release)!r})",
    ]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``condition`` until truthy: tests wait on facts, never on fixed sleeps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def cancel_leftover_jobs(folder: Path) -> None:
    """No test leaves a job running behind it."""
    for info in sorted(folder.rglob("*_job.json")) if folder.exists() else []:
        with contextlib.suppress(Exception):  # some tests break job folders on purpose
            job = submitit.Job(info.parent, info.name[: -len("_job.json")])
            if not job.done():
                job.cancel()


@pytest.fixture(name="executor")
def executor_fixture(tmp_path: Path) -> Iterator[submitit.LocalExecutor]:
    """A local executor named "waiter"; its jobs are cancelled afterwards."""
    folder = tmp_path / "jobs"
    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(name="waiter")
    yield executor
    cancel_leftover_jobs(folder)


@pytest.fixture(name="watcher")
def watcher_fixture() -> Iterator[Watcher]:
    """A private watcher polling fast; checked to stop once unsubscribed."""
    watcher = Watcher(min_interval_s=0.02, max_interval_s=0.2, final_grace_s=5.0)
    yield watcher
    for subscription in list(watcher._subscriptions):
        subscription.cancel()
    assert watcher.join(WAIT_S), "the watcher thread did not stop"
