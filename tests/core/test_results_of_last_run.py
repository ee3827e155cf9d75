"""A task's result from a run that was requeued is not the job's result.

In a job of two tasks, task 1 finishes in run 0 (its result written, ``completed task=1``)
while task 0 is checkpointed and the job requeued. In run 1, task 0 finishing must not end the
job with task 1's run-0 value: the job ends when task 1 of run 1 ends, with its new value, or
FAILED when it is killed without writing one. (The reviewer's reproduction: the job read
COMPLETED with the stale value, and a SIGKILL of task 1 left it so.)
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support import WAIT_S, wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.catalog import JobCatalog
from jupyter_slurm_ckpt.core.events import read_events


class Uneven(submitit.Checkpointable):
    """Run 0: task 1 returns at once, task 0 works until checkpointed. Run 1: task 0 returns
    at once; task 1 waits for the test (``release``), or kills itself (``kill``)."""

    def __call__(self, folder: str, ending: str) -> tuple[int, int]:
        env = submitit.JobEnvironment()
        rank, run = env.global_rank, env.restart_count
        Path(folder, f"task{rank}-run{run}").write_text("")
        while run == 0 and rank == 0:
            time.sleep(0.01)
        if run >= 1 and rank == 1:
            if ending == "kill":  # the OOM killer, say: no word, no result
                os.kill(os.getpid(), signal.SIGKILL)
            wait_for(lambda: Path(folder, "release").exists(), "the test's release", WAIT_S)
        return rank, run


def _run_1_with_task_0_done(local: submitit.LocalExecutor, folder: Path, ending: str) -> Any:
    local.update_parameters(tasks_per_node=2)
    job = local.submit(Uneven(), str(folder), ending)
    wait_for(lambda: _completed(job, 1, after_requeue=False), "task 1 to complete run 0")
    wait_for(lambda: (folder / "task0-run0").exists(), "task 0 to run")
    job._interrupt()
    wait_for(lambda: _completed(job, 0, after_requeue=True), "task 0 to complete run 1")
    return job


def _completed(job: Any, task: int, *, after_requeue: bool) -> bool:
    events = read_events(job.paths.events)
    requeued = [i for i, e in enumerate(events) if e["event"] == "requeued"]
    if after_requeue and not requeued:
        return False
    start = requeued[-1] if after_requeue else 0
    return any(
        e["event"] == "completed" and e.get("task") == task for e in events[start:]
    )


def test_a_task_result_of_a_requeued_run_is_not_the_jobs(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    job = _run_1_with_task_0_done(local, tmp_path, "release")
    wait_for(lambda: (tmp_path / "task1-run1").exists(), "task 1 to start run 1")
    fresh = type(job)(job.paths.folder, job.job_id)  # reads the folder anew
    assert fresh.state == "RUNNING" and not fresh.done()
    with pytest.raises(TimeoutError):
        fresh.results(timeout=0.2)
    with pytest.raises(submitit.UncompletedJobError):
        fresh.results_in_folder()
    assert JobCatalog().jobs([job.paths.folder])[0].final_state is None
    (tmp_path / "release").write_text("")
    assert job.results(timeout=WAIT_S) == [(0, 1), (1, 1)]
    assert job.state == "COMPLETED"
    assert JobCatalog().jobs([job.paths.folder])[0].final_state == "COMPLETED"


def test_a_task_killed_in_the_run_after_its_completed_one_fails_the_job(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    job = _run_1_with_task_0_done(local, tmp_path, "kill")
    job.wait(timeout=WAIT_S)
    assert job.state == "FAILED"
    with pytest.raises(submitit.UncompletedJobError, match="task 1 was killed by signal 9"):
        job.results()
    fresh = type(job)(job.paths.folder, job.job_id)
    assert fresh.state == "FAILED"
    assert JobCatalog().jobs([job.paths.folder])[0].final_state == "FAILED"
