"""Signals at awkward moments (local backend, real processes and signals).

An unpicklable checkpoint, a second signal during a checkpoint, and an interrupt that races a
requeue: each is recorded for what it is, and none leaks into user code or into the next run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.local import LocalJob
from jupyter_slurm_ckpt.backends.processes import is_alive

from .conftest import wait_running_run
from .jobs_for_tests import Counter


class GrabsALock(Counter):
    """Its checkpoint returns itself holding a lock: the new payload cannot be pickled."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.DelayedSubmission[Any]:
        self.guard = threading.Lock()
        return submitit.DelayedSubmission(self, *args, **kwargs)


def test_an_unpicklable_checkpoint_is_not_requeued_and_names_the_attribute(
    local: submitit.LocalExecutor,
) -> None:
    # Before the fix the pickling error was raised inside the signal handler, that is in the
    # user's loop: the job FAILED with a traceback there, and nothing said which attribute.
    local.update_parameters(signal_delay_s=1)
    job = local.submit(GrabsALock(step_s=0.05), 100_000)
    wait_running_run(job, 0)
    job._interrupt()
    with pytest.raises(submitit.UncompletedJobError, match="guard"):
        job.result(timeout=60)
    assert job.state == "PREEMPTED"
    reason = job.summary().not_requeued_reason or ""
    assert reason.startswith("checkpoint() returned a payload that cannot be pickled")
    assert "self.guard" in reason and "__getstate__" in reason
    checkpoint = [e for e in job.events() if e["event"] == "checkpoint"]
    assert [e["requeue"] for e in checkpoint] == [False]


class SlowCheckpoint(submitit.helpers.Checkpointable):
    """Its checkpoint waits for a file: a second signal arrives while it runs."""

    def __call__(self, folder: str) -> int:
        while not os.path.exists(os.path.join(folder, "finish")):
            time.sleep(0.02)
        return submitit.JobEnvironment().restart_count

    def checkpoint(self, folder: str) -> submitit.DelayedSubmission[Any]:
        Path(folder, "checkpointing").touch()
        while not os.path.exists(os.path.join(folder, "checkpoint may end")):
            time.sleep(0.02)
        return submitit.DelayedSubmission(self, folder)


def test_a_second_signal_during_a_checkpoint_keeps_its_reason(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    job = local.submit(SlowCheckpoint(), str(tmp_path))
    wait_running_run(job, 0)
    job._interrupt(timeout=False)
    wait_for((tmp_path / "checkpointing").exists, "the checkpoint to start")
    job._interrupt(timeout=True)  # still RUNNING: the checkpoint has not requeued yet
    # The second signal is recorded once the checkpoint is written, not from inside it (on
    # Slurm, telling its reason may ask the scheduler, which would hold the checkpoint up).
    (tmp_path / "checkpoint may end").touch()
    wait_running_run(job, 1)
    (tmp_path / "finish").touch()
    assert job.result(timeout=60) == 1
    names = [(e["event"], e.get("reason")) for e in job.events()]
    run_0 = names[names.index(("signal", "preemption")) : names.index(("requeued", None)) + 1]
    assert run_0 == [
        ("signal", "preemption"), ("checkpoint", None), ("signal", "timeout"), ("requeued", None)
    ]
    summary = job.summary()
    assert (summary.preemptions, summary.timeouts, summary.requeues) == (1, 1, 1)


class TwoTasks(submitit.helpers.Checkpointable):
    """Task 1 ignores SIGTERM: when task 0 requeues, the controller's kill of task 1 lasts its
    whole grace period. Each task says when it is ready (with its pid) for each run."""

    def __call__(self, folder: str) -> int:
        env = submitit.JobEnvironment()
        if env.global_rank == 1:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(folder, f"ready-{env.global_rank}-{env.restart_count}").write_text(str(os.getpid()))
        while not os.path.exists(os.path.join(folder, "finish")):
            time.sleep(0.02)
        return env.restart_count


def _pid_in(path: Path) -> int:
    return int(wait_for(lambda: path.exists() and path.read_text(), f"{path.name}"))


def test_an_interrupt_racing_a_requeue_does_not_hit_the_next_run(tmp_path: Path) -> None:
    # The race: a user's _interrupt() checks that the job is RUNNING just before the requeue,
    # and its signal reaches the controller after the run ended. It must not interrupt the
    # next run (before the fix the controller's flag outlived the run).
    attempts = []
    for attempt in range(3):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        executor = submitit.LocalExecutor(folder / "jobs")
        executor.update_parameters(tasks_per_node=2)
        job = executor.submit(TwoTasks(), str(folder))
        assert isinstance(job, LocalJob)
        task0, task1 = (_pid_in(folder / f"ready-{task}-0") for task in (0, 1))
        wait_running_run(job, 0)
        job._interrupt()
        # Task 0 checkpoints and exits to be requeued; once the controller has reaped it, it is
        # killing task 1 (which ignores SIGTERM) for a whole grace period: the run has ended.
        wait_for(lambda: not Path(f"/proc/{task0}").exists(), "task 0 to be reaped")  # noqa: B023
        job._send_interrupt("preemption")  # what _interrupt() does once its check has passed
        in_the_gap = is_alive(task1)
        _pid_in(folder / "ready-1-1")
        (folder / "finish").touch()
        assert job.results(timeout=60) == [1, 1]
        attempts.append((in_the_gap, job.summary().runs))
        if in_the_gap:
            break
    # Runs 0 and 1 only: the late interrupt was dropped, not delivered to run 1.
    assert attempts[-1] == (True, 2), attempts
