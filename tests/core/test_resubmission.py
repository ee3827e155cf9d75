"""``job.resubmit()`` is idempotent: twice, or from several processes at once, one new job.

Real local jobs and real processes; nothing mocked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import WAIT_S, cancel_leftover_jobs

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.resubmission import resubmit_once

from .conftest import wait_running_run
from .jobs_for_tests import Counter


def cancelled_counter(local: submitit.LocalExecutor) -> submitit.Job[dict[str, object]]:
    job = local.submit(Counter(step_s=0.5), 1000)
    wait_running_run(job, 0)
    job.cancel()
    return job


def jobs_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*_job.json"))


def test_a_second_resubmit_returns_the_job_the_first_made(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    job = cancelled_counter(local)
    first = job.resubmit()
    second = submitit.Job(folder, job.job_id).resubmit()  # re-attached, as a later kernel does
    assert second.job_id == first.job_id and second.paths.folder == first.paths.folder
    assert resubmit_once(job).created is False
    assert jobs_in(folder) == ["L1_job.json", "L2_job.json"]
    assert [e["job_id"] for e in job.events() if e["event"] == "resubmitted"] == ["L2"]
    first.cancel()


def test_processes_that_resubmit_at_once_make_one_job(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    job = cancelled_counter(local)
    code = (
        "import sys, jupyter_slurm_ckpt as s\n"
        f"job = s.Job({str(folder)!r}, 'L1')\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"  # every process is ready: they go together
        "print(job.resubmit().job_id)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        answers = {process.communicate(timeout=WAIT_S)[0].strip() for process in processes}
    finally:
        cancel_leftover_jobs(folder)
    assert answers == {"L2"}
    assert jobs_in(folder) == ["L1_job.json", "L2_job.json"]
    assert [e["job_id"] for e in job.events() if e["event"] == "resubmitted"] == ["L2"]


def fail_on_purpose() -> None:
    raise ValueError("a bug of the job's own")


def test_a_job_that_failed_with_its_own_exception_is_refused(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    job = local.submit(fail_on_purpose)
    job.wait(WAIT_S)
    assert job.state == "FAILED"
    with pytest.raises(submitit.UncompletedJobError, match="with an error of its own") as refused:
        job.resubmit()
    assert "job.result() raises it" in str(refused.value) and "fix the cause" in str(refused.value)
    assert jobs_in(folder) == ["L1_job.json"]
    assert not [e for e in job.events() if e["event"] == "resubmitted"]
