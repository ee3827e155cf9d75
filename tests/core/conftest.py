from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import cancel_leftover_jobs, wait_for

import jupyter_slurm_ckpt as submitit


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def local(folder: Path) -> Iterator[submitit.LocalExecutor]:
    executor = submitit.LocalExecutor(folder)
    yield executor
    cancel_leftover_jobs(folder)


def wait_running_run(job: submitit.Job[Any], run: int, timeout: float = 30.0) -> None:
    """Wait until run number ``run`` of the job has started and the job is RUNNING."""
    wait_for(
        lambda: job.summary().runs > run and job.state == "RUNNING",
        f"run {run} of {job.job_id} to start",
        timeout,
    )
