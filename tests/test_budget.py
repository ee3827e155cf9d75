"""The checkpoint budget check (``core.budget``): events in, plain warnings out.

These tests feed event lists shaped as jobs record them; tests/test_verify.py checks the budget
on real jobs (a slow checkpoint() in a verification, a run killed mid-checkpoint).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import cancel_leftover_jobs, wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt import Checkpointable, DelayedSubmission, LocalExecutor
from jupyter_slurm_ckpt.core.budget import (
    BudgetWarning,
    budget_message,
    check_budget,
    default_margin,
)
from jupyter_slurm_ckpt.core.info import JobInfo
from jupyter_slurm_ckpt.views.html import counters_html
from jupyter_slurm_ckpt.views.status import collect_status
from jupyter_slurm_ckpt.views.text import counters_text


def info(signal_delay_s: float = 30.0, timeout_min: float | None = None) -> JobInfo:
    return JobInfo("L1", "local", "/tmp", signal_delay_s=signal_delay_s, timeout_min=timeout_min)


def events(*records: tuple[float, str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"t": t, "event": name, **fields} for t, name, fields in records]


def checkpointed(seconds: float, run: int = 0) -> list[dict[str, Any]]:
    return events(
        (100.0, "started", {"run": run}),
        (101.0, "signal", {"reason": "preemption", "task": 0}),
        (101.0 + seconds, "checkpoint", {"seconds": seconds, "requeue": True, "bytes": 10}),
        (101.0 + seconds, "requeued", {"run": run + 1, "timeouts_left": 3}),
    )


def test_the_warning_names_both_numbers() -> None:
    found = check_budget(checkpointed(41.2), info(30.0))
    assert found == [
        BudgetWarning(
            run=0,
            seconds=41.2,
            delay_s=30.0,
            margin_s=2.0,
            killed=False,
            message=(
                "checkpoint() and its write took 41.2 s but the signal leaves 30 s "
                "(signal_delay_s=30, margin 2 s) before the hard kill: on a real cluster this "
                "checkpoint would be killed half-written"
            ),
        )
    ]


def test_checkpoints_within_the_budget_pass() -> None:
    assert check_budget(checkpointed(27.9), info(30.0)) == []
    assert check_budget([], info(30.0)) == []


def test_the_margin_counts() -> None:
    # 28.5 s fits in 30 s, but not with the 2 s kept for flushing and requeueing.
    assert [w.seconds for w in check_budget(checkpointed(28.5), info(30.0))] == [28.5]
    assert check_budget(checkpointed(28.5), info(30.0), margin_s=0.0) == []


def test_the_default_margin_is_small_for_short_delays() -> None:
    assert default_margin(90.0) == 2.0
    assert default_margin(1.0) == pytest.approx(0.1)
    warning = check_budget(checkpointed(0.95), info(1.0))[0]
    assert "signal leaves 1 s (signal_delay_s=1, margin 0.1 s)" in warning.message


def test_a_short_time_limit_caps_the_delay() -> None:
    # A 1-minute limit leaves at most 30 s between the signal and the kill, whatever the delay.
    warning = check_budget(checkpointed(31.0), info(90.0, timeout_min=1.0))[0]
    assert warning.delay_s == 30.0
    assert (
        "signal leaves 30 s (signal_delay_s=90, capped at half the 1-minute time limit, "
        "margin 2 s)" in warning.message
    )


def test_each_slow_checkpoint_is_reported_with_its_run() -> None:
    log = checkpointed(1.0, run=0) + checkpointed(50.0, run=1) + checkpointed(45.0, run=2)
    assert [(w.run, w.seconds) for w in check_budget(log, info(30.0))] == [(1, 50.0), (2, 45.0)]


def test_a_run_killed_during_its_checkpoint_is_reported() -> None:
    log = events(
        (100.0, "started", {"run": 0}),
        (101.0, "signal", {"reason": "timeout", "task": 0}),
        (131.5, "failed", {"state": "TIMEOUT", "reason": "killed at the time limit (timeout)"}),
    )
    (warning,) = check_budget(log, info(30.0))
    assert warning.killed and warning.seconds == pytest.approx(30.5)
    assert warning.message.startswith(
        "the run was killed 30.5 s after the signal before its checkpoint was written"
    )


def test_ends_that_are_not_a_killed_checkpoint_are_not_reported() -> None:
    refused = events(
        (100.0, "started", {"run": 3}),
        (101.0, "signal", {"reason": "timeout", "task": 0}),
        (101.0, "not_requeued", {"reason": "timed out 4 times, max_num_timeout=3"}),
        (131.0, "failed", {"state": "TIMEOUT", "reason": "timed out 4 times"}),
    )
    other_task = events(
        (100.0, "started", {"run": 0}),
        (101.0, "signal", {"reason": "preemption", "task": 1}),
        (102.0, "failed", {"state": "FAILED", "reason": "ValueError"}),
    )
    cancelled = events(
        (100.0, "started", {"run": 0}),
        (101.0, "signal", {"reason": "preemption", "task": 0}),
        (102.0, "cancelled", {"by": "user"}),
        (103.0, "failed", {"state": "PREEMPTED"}),
    )
    for log in (refused, other_task, cancelled):
        assert check_budget(log, info(30.0)) == []


def sigterm_info(kill_wait_s: float | None) -> JobInfo:
    return JobInfo("7", "slurm", "/tmp", signal_delay_s=90.0, kill_wait_s=kill_wait_s)


def test_a_checkpoint_after_a_sigterm_is_compared_with_killwait() -> None:
    # A stock cluster's preemption: the SIGTERM is the only notice, KillWait (5 s) the window.
    log = events(
        (100.0, "started", {"run": 0}),
        (101.0, "signal", {"reason": "preemption", "task": 0, "via": "SIGTERM"}),
        (107.0, "checkpoint", {"seconds": 6.0, "requeue": True, "bytes": 10}),
        (107.0, "requeued", {"run": 1, "timeouts_left": 3, "by": "scheduler"}),
    )
    assert check_budget(log, info(90.0)) == []  # within the signal delay, but...
    (warning,) = check_budget(log, sigterm_info(5.0))  # ...not within KillWait
    assert (warning.delay_s, warning.margin_s, warning.via) == (5.0, 0.5, "SIGTERM")
    assert "the SIGTERM leaves 5 s (KillWait=5, margin 0.5 s)" in warning.message
    slower = [*log[:2], {**log[2], "seconds": 29.0}, *log[3:]]
    unknown = check_budget(slower, sigterm_info(None))
    assert "the SIGTERM leaves 30 s (Slurm's default KillWait=30" in unknown[0].message


def test_a_run_killed_during_its_sigterm_checkpoint_is_reported_by_the_next_run() -> None:
    # Issue 22, item 6: KillWait=5, a state that takes 8 s to pickle. The run is SIGKILLed
    # mid-checkpoint; Slurm requeues it, and its next run records the run lost without a word.
    log = events(
        (100.0, "started", {"run": 0}),
        (101.0, "signal", {"reason": "preemption", "task": 0, "via": "SIGTERM"}),
        (120.0, "requeued", {"run": 1, "reason": "unknown", "lost_progress": True}),
        (120.1, "started", {"run": 1}),
    )
    (warning,) = check_budget(log, sigterm_info(5.0))
    assert warning.killed and warning.seconds is None and warning.run == 0
    assert warning.message.startswith(
        "the run was killed before its checkpoint was written (the SIGTERM leaves 5 s "
        "(KillWait=5, margin 0.5 s)): its progress since the last checkpoint is lost"
    )
    # A run lost before any signal, or after its checkpoint was written, is no budget matter.
    lost_quietly = [log[0], log[2], log[3]]
    written = {"t": 102.0, "event": "checkpoint", "seconds": 1.0, "requeue": True}
    checkpointed_then_lost = [*log[:2], written, *log[2:]]
    assert check_budget(lost_quietly, sigterm_info(5.0)) == []
    assert check_budget(checkpointed_then_lost, sigterm_info(5.0)) == []


def test_report_progress_outside_a_job_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JSC_JOB_ID", raising=False)
    monkeypatch.delenv("JSC_JOB_FOLDER", raising=False)
    submitit.report_progress(epoch=3)  # no job, no event file: nothing happens
    with pytest.raises(ValueError, match="run is reserved"):
        submitit.report_progress(run=3)


def test_budget_message_alone() -> None:
    assert budget_message(3.0, info(2.0), margin_s=0.5).startswith(
        "checkpoint() and its write took 3.0 s but the signal leaves 2 s (signal_delay_s=2, "
        "margin 0.5 s)"
    )


class Stepping(Checkpointable):
    """Counts ``n`` steps of 20 ms; its checkpoint keeps the count."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, n: int) -> int:
        while self.steps < n:
            self.steps += 1
            time.sleep(0.02)
        return self.steps


class SlowCheckpoint(Stepping):
    """Its checkpoint() takes 1.5 s: more than a 1 s signal delay leaves."""

    def checkpoint(self, n: int) -> DelayedSubmission[int]:
        time.sleep(1.5)
        return DelayedSubmission(self, n)


def test_every_job_widget_shows_the_budget_warning(tmp_path: Path) -> None:
    # A real local job: the local backend kills the run 1 s after the signal, so the slow
    # checkpoint is cut short, as a cluster would: the job's status says so with both numbers.
    executor = LocalExecutor(tmp_path)
    executor.update_parameters(signal_delay_s=1)
    job = executor.submit(SlowCheckpoint(), 200)
    wait_for(lambda: job.state == "RUNNING" and job.summary().runs, "the job to run")
    job._interrupt()
    job.wait(timeout=60)
    cancel_leftover_jobs(tmp_path)
    status = collect_status(job)
    assert status.budget_warnings, job.events()
    assert "signal leaves 1 s" in counters_text(status)
    assert "⚠" in counters_html(status)


class SlowToPickle(Stepping):
    """A state that takes 1 s to pickle once it has run (a large model, say); its checkpoint()
    itself returns at once."""

    def __getstate__(self) -> dict[str, Any]:
        if self.steps:
            time.sleep(1.0)
        return dict(self.__dict__)


def test_the_checkpoint_time_covers_pickling_writing_and_fsync(tmp_path: Path) -> None:
    # Issue 22, item 5: the event said 0.0 s although the signal -> checkpoint took longer.
    executor = LocalExecutor(tmp_path)
    job = executor.submit(SlowToPickle(), 100)
    wait_for(lambda: job.state == "RUNNING" and job.summary().runs, "the job to run")
    time.sleep(0.1)  # some steps done: the state is slow to pickle from now on
    job._interrupt()
    assert job.result(timeout=60) == 100
    (checkpoint,) = [e for e in job.events() if e["event"] == "checkpoint"]
    assert checkpoint["seconds"] >= checkpoint["write_s"] >= 1.0, checkpoint
    rows = collect_status(job).timeline
    (row,) = [row for row in rows if row.event == "checkpoint"]
    assert row.details.startswith(f"checkpoint() and its write took {checkpoint['seconds']:.2f} s")
