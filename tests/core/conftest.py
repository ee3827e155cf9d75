from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import jupyter_slurm_ckpt as submitit


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def local(folder: Path) -> Iterator[submitit.LocalExecutor]:
    executor = submitit.LocalExecutor(folder)
    yield executor
    # No test may leave a job running behind it.
    for info in folder.glob("*_job.json") if folder.exists() else []:
        job = submitit.Job(folder, info.name[: -len("_job.json")])
        if not job.done():
            job.cancel()


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until truthy (tests wait on facts, never on fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_running_run(job: submitit.Job[Any], run: int, timeout: float = 30.0) -> None:
    """Wait until run number ``run`` of the job has started and the job is RUNNING."""
    wait_for(
        lambda: job.summary().runs > run and job.state == "RUNNING",
        timeout,
        f"run {run} of {job.job_id} to start",
    )


@pytest.fixture(autouse=True, scope="session")
def _ship_test_callables_by_value() -> None:
    # Jobs run in fresh interpreters that need not find the tests package on sys.path.
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__package__])
