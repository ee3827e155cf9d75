"""What a run asks Slurm when a signal comes, and what it does when Slurm cannot answer.

A signal does not say why it came: task 0 asks Slurm about its job, once per signal and with a
short bound (the other tasks read its answer), and reads only fields Slurm writes itself, in a
time format it sets. When Slurm does not answer, what the run knew when it started (the end of
its time limit) tells a timeout, and nothing else is ever taken for a reason to requeue.

A controller that hangs is played by ``squeue``/``scontrol`` wrappers first on the job's PATH
(the ``commands_of_the_job`` fixture): the real controller cannot be made to hang for one job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SlurmCommandsOfTheJob, slurm_fields
from slurm_jobs_for_tests import Gated, SlowToCheckpoint, wait_for_gate
from support import wait_for
from test_slurm_termination import events, preempt, running

import jupyter_slurm_ckpt as submitit

pytestmark = pytest.mark.slurm

WAIT_S = 120.0
#: How long the worker waits for Slurm's answer (``task.QUERY_TIMEOUT_S``), with room for a
#: loaded machine. Before the fix a warning waited 30 s (the default command timeout).
ANSWER_BOUND_S = 15.0


def warn(job: submitit.Job[Any], *, steps: bool = False) -> float:
    """Send the job's worker(s) a USR2 as Slurm's warning would come (no ``_interrupt``, so no
    reason is written for it); the time it was sent."""
    sent = time.time()
    scope = [] if steps else ["--full"]
    subprocess.run(["scancel", "--signal=USR2", *scope, job.job_id], check=True)
    return sent


def ended_for_good(job: submitit.Job[Any], state: str) -> None:
    """Slurm says ``state`` and the job does not run again (a requeue starts it within ~6 s)."""
    wait_for(lambda: job.done() and _slurm_state(job) == state, f"Slurm to say {state}", WAIT_S)
    time.sleep(8)
    assert _slurm_state(job) == state and job.summary().runs == 1


def _slurm_state(job: submitit.Job[Any]) -> str:
    return subprocess.run(["squeue", "-h", "-t", "all", "-j", job.job_id, "-o", "%T"],
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def hanging(
    executor: submitit.AutoExecutor, commands_of_the_job: SlurmCommandsOfTheJob
) -> SlurmCommandsOfTheJob:
    """The executor's jobs ask a controller that never answers about themselves."""
    executor.update_parameters(slurm_setup=[commands_of_the_job.setup_line])
    commands_of_the_job.hang()
    return commands_of_the_job


def test_a_warning_when_slurm_hangs_checkpoints_at_once_and_counts_the_timeout(
    executor: submitit.AutoExecutor, gate: Path, hanging: SlurmCommandsOfTheJob
) -> None:
    # A one-minute job is warned: Slurm does not answer why, but the run knows its time limit
    # ends within the warning's reach, so it is a timeout (before the fix: a "preemption" after
    # 30 s of waiting, which never counted toward max_num_timeout).
    executor.update_parameters(timeout_min=1)
    job = executor.submit(Gated(), str(gate), 3)
    running(job, 0)
    sent = warn(job)
    wait_for(lambda: events(job, "requeued"), "the requeue", WAIT_S)
    took = events(job, "checkpoint")[0]["t"] - sent
    print(f"USR2 -> checkpoint with a hanging controller: {took:.2f} s")
    assert took < ANSWER_BOUND_S
    # Slurm's own warning of the one-minute limit may come too (at its first limit check after
    # the start, up to 30 s early): a second timeout, asked about once the checkpoint is done.
    reasons = [e["reason"] for e in events(job, "signal")]
    assert reasons[0] == "timeout" and set(reasons) == {"timeout"}
    assert job.summary().timeouts == len(reasons) and len(hanging.questions()) == len(reasons)
    gate.touch()
    assert job.result(timeout=WAIT_S)["runs"][:2] == [0, 1]


def test_scancel_when_slurm_hangs_ends_cancelled_and_never_runs_again(
    executor: submitit.AutoExecutor, gate: Path, hanging: SlurmCommandsOfTheJob
) -> None:
    # A plain function (no checkpoint method) gets scancel's SIGTERM; Slurm cannot say why.
    # Before the fix it was requeued "from scratch" and the cancelled job ran again.
    job = executor.submit(wait_for_gate, str(gate))
    running(job, 0)
    subprocess.run(["scancel", job.job_id], check=True)
    ended_for_good(job, "CANCELLED")
    assert job.state == "CANCELLED" and events(job, "requeued") == []
    (refused,) = events(job, "not_requeued")
    assert refused["reason"].startswith("Slurm could not be asked why the run ends")


def test_scancel_during_a_checkpoint_is_not_undone_by_its_requeue(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path
) -> None:
    # scancel's SIGTERM lands while the warning's checkpoint runs. Before the fix the checkpoint
    # went on to requeue the job, and the cancelled job ran again.
    job = executor.submit(SlowToCheckpoint(str(tmp_path)), str(gate), 3)
    running(job, 0)
    warn(job)
    wait_for((tmp_path / "checkpointing").exists, "the checkpoint", WAIT_S)
    subprocess.run(["scancel", job.job_id], check=True)
    wait_for(lambda: "termination signal while checkpointing" in (job.stderr() or ""),
             "the SIGTERM to reach the checkpointing job", WAIT_S)
    (tmp_path / "may end").touch()  # within KillWait of the SIGTERM
    ended_for_good(job, "CANCELLED")
    assert [e["requeue"] for e in events(job, "checkpoint")] == [True]
    assert events(job, "requeued") == []


def test_a_comment_cannot_pass_for_slurms_reason(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # scontrol show job prints the comment after the Reason; the last "Reason=" won, and a
    # cancelled job was taken for a timed-out one (checkpointed and requeued).
    executor.update_parameters(slurm_comment="x Reason=TimeLimit PreemptTime=2026-01-01T00:00:00")
    job = executor.submit(Gated(), str(gate))
    running(job, 0)
    subprocess.run(["scancel", job.job_id], check=True)
    ended_for_good(job, "CANCELLED")
    assert events(job, "checkpoint") == [] and events(job, "signal") == []


def test_a_sites_time_format_does_not_change_why_a_warning_came(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # A site's profile (sourced by a setup line) sets SLURM_TIME_FORMAT: Slurm's times read
    # "Tomorr 10:32" then. Before the fix the end of the limit was unreadable, and its
    # warning was taken for a preemption.
    executor.update_parameters(slurm_setup=["export SLURM_TIME_FORMAT=relative"])
    job = executor.submit(Gated(), str(gate), 3)
    running(job, 0)
    subprocess.run(["scontrol", "update", f"jobid={job.job_id}", "EndTime=now+100"], check=True)
    warn(job)  # 100 s before the end, within the warning's 90 s (+ Slurm's 30 s check period)
    wait_for(lambda: events(job, "requeued"), "the requeue", WAIT_S)
    assert [e["reason"] for e in events(job, "signal")] == ["timeout"]
    running(job, 1)
    gate.touch()
    assert job.result(timeout=WAIT_S)["runs"] == [0, 1] and job.summary().timeouts == 1


@pytest.fixture
def short_grace() -> Iterator[None]:
    """The ``low`` partition's grace time at 1 s for one test, put back afterwards."""
    subprocess.run(["scontrol", "update", "partitionname=low", "gracetime=1"], check=True)
    try:
        yield
    finally:
        subprocess.run(["scontrol", "update", "partitionname=low", "gracetime=5"], check=True)


def test_a_requeue_slurm_made_first_counts_as_requeued(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path, slurm_cluster: Any,
    short_grace: None,
) -> None:
    # The checkpoint outlasts the grace time: Slurm requeues the job itself, and the job's own
    # `scontrol requeue` then hears "Job is pending execution". Before the fix that was retried
    # until Slurm's SIGKILL, and the next run found a run lost without a word.
    if slurm_cluster.preemption != "signal":
        pytest.skip("without preempt_send_user_signal the preemption's SIGTERM comes after "
                    "Slurm's requeue, which the job reads: it never asks for one")
    executor.update_parameters(slurm_exclusive=True)
    job = executor.submit(SlowToCheckpoint(str(tmp_path)), str(gate), 3)
    running(job, 0)
    high = preempt(job)
    try:
        wait_for((tmp_path / "checkpointing").exists, "the checkpoint to begin", WAIT_S)
        wait_for(lambda: slurm_fields(job.job_id)["Restarts"] == "1",
                 "Slurm to requeue the job itself", WAIT_S)
        (tmp_path / "may end").touch()  # within KillWait (5 s) of Slurm's SIGTERM
        running(job, 1)
    finally:
        subprocess.run(["scancel", high], check=False)
    gate.touch()
    assert job.result(timeout=WAIT_S)["resumed_from"][1] > 0
    (requeued,) = events(job, "requeued")
    assert requeued.get("by") == "scheduler" and "reason" not in requeued  # not a lost run
    assert events(job, "failed") == [] and events(job, "not_requeued") == []


def test_a_second_warning_during_a_checkpoint_asks_slurm_after_it(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path,
    commands_of_the_job: SlurmCommandsOfTheJob,
) -> None:
    # Before the fix the second USR2's handler asked Slurm from inside the checkpoint under way
    # (up to the 30 s command timeout, in the checkpoint's window).
    executor.update_parameters(slurm_setup=[commands_of_the_job.setup_line])
    job = executor.submit(SlowToCheckpoint(str(tmp_path), checkpoint_s=3.0), str(gate), 3)
    running(job, 0)
    warn(job)
    began = float(wait_for(lambda: _read(tmp_path / "checkpointing"), "the checkpoint", WAIT_S))
    warn(job)  # while checkpoint() runs (3 s)
    wait_for(lambda: events(job, "requeued"), "the requeue", WAIT_S)
    written = events(job, "checkpoint")[0]["t"]
    asked = commands_of_the_job.questions()
    assert len(asked) == 2 and not [t for t in asked if began <= t <= written]
    assert [e["reason"] for e in events(job, "signal")] == ["preemption", "preemption"]
    running(job, 1)
    gate.touch()
    assert job.result(timeout=WAIT_S)["runs"] == [0, 1]


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()
    return ""


def test_two_tasks_ask_slurm_once_per_signal(
    executor: submitit.AutoExecutor, gate: Path, commands_of_the_job: SlurmCommandsOfTheJob
) -> None:
    # Every task used to ask Slurm at once: N controller calls per signal (and, on clusters that
    # rate-limit their users, answers lost). Task 0 asks; the other tasks read its answer.
    executor.update_parameters(tasks_per_node=2, slurm_setup=[commands_of_the_job.setup_line])
    job = executor.submit(Gated(), str(gate), 3)
    wait_for(lambda: _tasks_started(job, 0), "both tasks of run 0", WAIT_S)
    warn(job, steps=True)
    wait_for(lambda: len(events(job, "signal")) == 2, "both tasks' signals", WAIT_S)
    assert sorted((e["task"], e["reason"]) for e in events(job, "signal")) == [
        (0, "preemption"), (1, "preemption")
    ]
    assert len(commands_of_the_job.questions()) == 1
    wait_for(lambda: _tasks_started(job, 1), "both tasks of run 1", WAIT_S)
    gate.touch()
    assert [r["runs"] for r in job.results(timeout=WAIT_S)] == [[0, 1], [0, 1]]


def _tasks_started(job: submitit.Job[Any], run: int) -> bool:
    started = {e.get("task", 0) for e in events(job, "started") if e["run"] == run}
    return started == {0, 1} and job.state == "RUNNING"


def test_every_task_leaves_when_one_is_terminated(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # Task 1 alone gets a SIGTERM (not Slurm ending the job: a stray signal, an administrator).
    # Before the fix it left and task 0 ran on with a rank missing; now srun ends the others,
    # and task 0 records why, keeps its checkpoint and is not requeued.
    executor.update_parameters(tasks_per_node=2)
    job = executor.submit(Gated(), str(gate), 3)
    wait_for(lambda: _tasks_started(job, 0), "both tasks of run 0", WAIT_S)
    pids = {e.get("task", 0): int(e["pid"]) for e in events(job, "started")}
    os.kill(pids[1], signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pids[0]}").exists(), "task 0 to leave too", 60)
    job.wait(timeout=WAIT_S)
    assert job.state == "FAILED" and events(job, "requeued") == []
    (refused,) = events(job, "not_requeued")
    assert "SIGTERM while Slurm says the job runs" in refused["reason"]
    assert refused["reason"].endswith("its checkpoint is kept")
