"""Helpers shared by the widget, watcher, kernel and browser tests (this module has no tests).

Import the fixtures by their function names (``executor_fixture``, ``watcher_fixture``): pytest
registers them as ``executor`` and ``watcher``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
import test_widget_jobs
from support import WAIT_S, cancel_leftover_jobs

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.watcher import Watcher

cloudpickle.register_pickle_by_value(test_widget_jobs)  # jobs need not import the tests


# What a user would type: the job's class defined in the %%slurm cell, pickled by value.
JOB_SOURCE = (Path(__file__).parent / "test_widget_jobs.py").read_text()


def submission_cells(release: Path) -> list[str]:
    """Notebook cells that load the extension and submit a ``Waiter`` job with ``%%slurm``."""
    return [
        "%load_ext jupyter_slurm_ckpt",
        f"%%slurm --cluster local --folder jobs --name waiter\n{JOB_SOURCE}\n"
        f"job = Waiter()({str(release)!r})",
    ]


def progress_cells(release: Path) -> list[str]:
    """Notebook cells that submit a ``tqdm_loop`` (paused at 120 of 200) and a ``Stepper``
    reporting ``step``/``total`` (paused at 50 of 200) with ``%%slurm``."""
    waiting = f"{str(release)!r}"
    return [
        "%load_ext jupyter_slurm_ckpt",
        f"%%slurm --cluster local --folder jobs --name tqdm-loop\n{JOB_SOURCE}\n"
        f"looping = tqdm_loop(200, {waiting}, 120)",
        f"%%slurm --cluster local --folder jobs --name stepper\n"
        f"stepping = Stepper()(200, {waiting}, 50)",
    ]


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
