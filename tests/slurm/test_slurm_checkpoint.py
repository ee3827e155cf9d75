"""Checkpoint and requeue on the real cluster: simulated and real preemption and time limits.

Each job is a ``Gated`` counter submitted through ``AutoExecutor`` (which picks Slurm because
sbatch is on PATH): it keeps counting until the test opens its gate, so every interrupt lands
while it runs, and its result tells from which count each run resumed.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from slurm_jobs_for_tests import Gated

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt import UncompletedJobError

pytestmark = pytest.mark.slurm

WAIT_S = 120.0  # generous: the machine is shared; Slurm checks limits every 30 s


class StateLog:
    """Polls ``job.state`` and keeps every state seen, in order (what a user's loop sees)."""

    def __init__(self, job: submitit.Job[Any]) -> None:
        self.job = job
        self.seen: list[str] = []

    def until(self, condition: Any, what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job.state
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; states {self.seen}")

    def run_started(self, run: int) -> None:
        """Wait until run ``run`` (0 first) has started and the job is RUNNING."""
        self.until(
            lambda: self.job.summary().runs > run and self.job.state == "RUNNING",
            f"run {run} of job {self.job.job_id}",
        )


def signals(job: submitit.Job[Any]) -> list[str]:
    return [e["reason"] for e in job.events() if e["event"] == "signal"]


def test_interrupt_preemption_then_timeout_resumes_each_time(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    job = executor.submit(Gated(), str(gate), 3)
    assert isinstance(job, submitit.SlurmJob) and job.job_id.isdigit()
    log = StateLog(job)
    log.run_started(0)
    job._interrupt()  # a simulated preemption
    log.run_started(1)
    job._interrupt(timeout=True)
    log.run_started(2)
    gate.touch()
    result = job.result(timeout=WAIT_S)

    assert result["runs"] == [0, 1, 2]  # SLURM_RESTART_COUNT as the job saw it
    assert result["resumed_from"][0] == 0
    assert 0 < result["resumed_from"][1] < result["resumed_from"][2]  # from its checkpoints
    assert signals(job) == ["preemption", "timeout"]
    summary = job.summary()
    assert (summary.preemptions, summary.timeouts, summary.requeues) == (1, 1, 2)
    assert job.restart_count == 2
    assert job.state == "COMPLETED"
    # The requeue was seen between the runs, and the job never looked finished before its end.
    assert log.seen[-1] == "RUNNING" and "REQUEUED" in log.seen
    assert not set(log.seen) & {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED"}
    # One log across the runs: appended at every requeue, not truncated.
    assert job.stderr().count("jupyter_slurm_ckpt: received") == 2


def test_real_one_minute_time_limit_checkpoints_and_resumes(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # The warning comes signal_delay_s (capped at half the limit: 30 s) before the limit,
    # give or take Slurm's 30-second limit checks.
    executor.update_parameters(timeout_min=1)
    job = executor.submit(Gated(), str(gate), 3)
    assert job.info.signal_delay_s == 30 and job.info.timeout_min == 1
    log = StateLog(job)
    log.run_started(1)  # the first run was warned by Slurm and requeued itself
    gate.touch()
    result = job.result(timeout=WAIT_S)
    assert signals(job) == ["timeout"]
    assert result["runs"] == [0, 1] and result["resumed_from"][1] > 0
    assert job.summary().timeouts == 1 and "REQUEUED" in log.seen


def test_max_num_timeout_stops_the_job_with_the_reason(folder: Path, gate: Path) -> None:
    executor = submitit.AutoExecutor(folder, slurm_max_num_timeout=1)
    executor.update_parameters(timeout_min=10)
    job = executor.submit(Gated(), str(gate), 3)
    log = StateLog(job)
    log.run_started(0)
    job._interrupt(timeout=True)  # the one timeout allowed: requeued
    log.run_started(1)
    job._interrupt(timeout=True)  # the second: refused, the job runs on to its limit
    log.until(lambda: job.summary().not_requeued_reason, "the refusal")
    # Bring the limit close: Slurm ends the job TIMEOUT at its next limit check (<= 30 s).
    subprocess.run(
        ["scontrol", "update", f"jobid={job.job_id}", "EndTime=now+5"], check=True
    )
    log.until(job.done, "the time limit")
    assert job.state == "TIMEOUT"
    with pytest.raises(UncompletedJobError) as caught:
        job.result()
    # Moving EndTime also brings Slurm's own warning: a third timeout, refused as well.
    assert re.search(r"timed out [23] times, max_num_timeout=1", str(caught.value))
    assert signals(job)[:2] == ["timeout", "timeout"] and set(signals(job)) == {"timeout"}
    assert job.summary().requeues == 1
    # The end is in the job folder too (for the widget, the sidebar, re-attach).
    terminal = job.summary().terminal
    assert terminal is not None and terminal["state"] == "TIMEOUT"
    assert submitit.Job(folder, job.job_id).state == "TIMEOUT"


def test_interrupting_one_array_element_requeues_it_alone(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # An element's raw Slurm id can be the array's own id (the last element started takes
    # it): requeueing by that id would requeue the whole array.
    jobs = executor.map_array(Gated(), [str(gate)] * 2)
    logs = [StateLog(job) for job in jobs]
    for log in logs:
        log.run_started(0)
    array_id = jobs[0].job_id.split("_")[0]
    raw = subprocess.run(["squeue", "-h", "-r", "-j", array_id, "-o", "%i %A"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    owner = next(line.split()[0] for line in raw if line.endswith(f" {array_id}"))
    target = next(job for job in jobs if job.job_id == owner)
    other = next(job for job in jobs if job is not target)
    target._interrupt()
    logs[jobs.index(target)].run_started(1)
    gate.touch()
    assert target.result(timeout=WAIT_S)["runs"] == [0, 1]
    assert other.result(timeout=WAIT_S)["runs"] == [0]  # never requeued
    assert other.summary().runs == 1 and other.restart_count == 0
