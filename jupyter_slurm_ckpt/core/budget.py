"""The checkpoint budget: is the checkpoint durable before the hard kill that follows the signal?

A checkpoint is ``checkpoint()`` and the write of the payload it returns (pickling, writing,
fsync: the ``seconds`` of the ``checkpoint`` event). Each way a run is told to stop leaves its
own time: the warning signal (USR2) comes ``signal_delay_s`` before the kill (at most half of
a short time limit: :meth:`JobInfo.effective_signal_delay_s`); a scheduler's SIGTERM (a stock
cluster's preemption, a time limit without a warning) comes ``KillWait`` before SIGKILL
(:meth:`JobInfo.termination_window_s`). A checkpoint that takes longer is killed half-written,
and the next run resumes from a stale checkpoint. :func:`check_budget` reads a job's events and
says so plainly, with both numbers, for the job widget and the checkpoint verification report;
a run killed while it checkpointed is reported too, whether its job ended then or a later run
recorded it (``requeued {reason: unknown}``). Imports neither IPython nor widgets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .info import JobInfo

#: Time kept in reserve before the hard kill (flushing, the requeue itself), at most.
DEFAULT_MARGIN_S = 2.0
#: ... and at most this fraction of the signal delay (a 1 s delay keeps 0.1 s).
MARGIN_FRACTION = 0.1


# The states of a run killed at the end of its signal delay (the local backend, Slurm).
_KILLED = ("TIMEOUT", "PREEMPTED")


def default_margin(delay_s: float) -> float:
    """The margin kept before the hard kill: 2 s, or 10% of a shorter delay."""
    return min(DEFAULT_MARGIN_S, MARGIN_FRACTION * delay_s)


@dataclass(frozen=True)
class BudgetWarning:
    """One checkpoint that did not fit in the time its signal leaves.

    Attributes
    ----------
    run
        The run (0 for the first) whose checkpoint it was.
    seconds
        How long the checkpoint took (``checkpoint()`` and the write of its payload); for a
        killed one, how long after the signal the run was killed, None when not recorded.
    delay_s
        The time the signal leaves before the hard kill (its window).
    margin_s
        The reserve the check keeps before the hard kill.
    killed
        True when the run was killed before its checkpoint was written.
    message
        The warning, in words, with both numbers.
    via
        ``"SIGTERM"`` when the scheduler's SIGTERM was the signal (its window is KillWait),
        None for the warning signal.
    """

    run: int
    seconds: float | None
    delay_s: float
    margin_s: float
    killed: bool
    message: str
    via: str | None = None


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.1f}".removesuffix(".0")


def window_s(info: JobInfo, via: str | None) -> float:
    """The time a signal leaves before the hard kill: KillWait after a SIGTERM, else the
    effective signal delay."""
    return info.termination_window_s() if via == "SIGTERM" else info.effective_signal_delay_s()


def _budget_words(info: JobInfo, margin_s: float | None, via: str | None) -> str:
    """'the signal leaves 30 s (signal_delay_s=30, margin 2 s)': the time left, and why."""
    window = window_s(info, via)
    margin = default_margin(window) if margin_s is None else margin_s
    if via == "SIGTERM":
        known = "KillWait" if info.kill_wait_s is not None else "Slurm's default KillWait"
        why = f"{known}={_number(window)}, margin {_number(margin)} s"
        return f"the SIGTERM leaves {_number(window)} s ({why})"
    words = f"signal_delay_s={_number(info.signal_delay_s)}"
    if window < info.signal_delay_s and info.timeout_min is not None:
        words += f", capped at half the {_number(info.timeout_min)}-minute time limit"
    return f"the signal leaves {_number(window)} s ({words}, margin {_number(margin)} s)"


def _advice(via: str | None) -> str:
    if via == "SIGTERM":
        return (
            "make checkpoint() faster or its state smaller (or ask for a warning signal: "
            "--signal-delay-s with Slurm's preempt_send_user_signal, or a longer KillWait)"
        )
    return "make checkpoint() faster or its state smaller, or raise signal_delay_s"


def budget_message(
    seconds: float, info: JobInfo, margin_s: float | None = None, via: str | None = None
) -> str:
    """The warning for a checkpoint that took ``seconds`` in a job described by ``info``."""
    return (
        f"checkpoint() and its write took {seconds:.1f} s but "
        f"{_budget_words(info, margin_s, via)} before the hard kill: on a real cluster this "
        "checkpoint would be killed half-written"
    )


def killed_message(
    seconds: float | None, info: JobInfo, margin_s: float | None = None, via: str | None = None
) -> str:
    """The warning for a run killed ``seconds`` (None: not recorded) after its signal,
    before its checkpoint was written."""
    when = "" if seconds is None else f" {seconds:.1f} s after the signal"
    return (
        f"the run was killed{when} before its checkpoint was written "
        f"({_budget_words(info, margin_s, via)}): its progress since the last checkpoint is "
        f"lost; {_advice(via)}"
    )


@dataclass
class _Signal:
    """A task-0 signal whose checkpoint has not ended yet."""

    t: float
    via: str | None


def check_budget(
    events: Iterable[dict[str, Any]], info: JobInfo, margin_s: float | None = None
) -> list[BudgetWarning]:
    """Every checkpoint of a job that took longer than its signal leaves (minus a margin).

    Parameters
    ----------
    events
        The job's events (``job.events()``).
    info
        The job's description (``job.info``): its signal delay and KillWait are the budgets.
    margin_s
        Reserve kept before the hard kill; default :func:`default_margin` of the window.

    Returns
    -------
    list of BudgetWarning
        Empty when every checkpoint fitted. A run killed after its signal without a
        ``checkpoint`` event (the checkpoint never became durable) is reported as killed:
        when the job ended then (``failed`` TIMEOUT or PREEMPTED), or when the next run found
        it gone without a word (``requeued {reason: unknown}``).
    """
    warnings: list[BudgetWarning] = []
    run = 0
    pending: _Signal | None = None
    for record in events:
        name = record.get("event")
        if name == "started" and record.get("task", 0) == 0:
            run = int(record.get("run", run))
            pending = None
        elif name == "signal" and record.get("task", 0) == 0 and pending is None:
            pending = _Signal(float(record.get("t", 0.0)), record.get("via"))
        elif name == "checkpoint":
            seconds = float(record.get("seconds", 0.0))
            via = None if pending is None else pending.via
            warnings += _slow(seconds, run, via, info, margin_s)
            pending = None
        elif name == "requeued" and record.get("reason") == "unknown" and pending is not None:
            # The next run found this one gone without a word: SIGKILLed mid-checkpoint.
            warnings.append(_killed(None, run, pending, info, margin_s))
            pending = None
        elif name in ("not_requeued", "cancelled", "requeued"):
            pending = None  # refused, stopped by the user, or requeued without a checkpoint
        elif name == "failed" and pending is not None and record.get("state") in _KILLED:
            seconds = max(0.0, float(record.get("t", pending.t)) - pending.t)
            warnings.append(_killed(seconds, run, pending, info, margin_s))
            pending = None
    return warnings


def _slow(
    seconds: float, run: int, via: str | None, info: JobInfo, margin_s: float | None
) -> list[BudgetWarning]:
    window = window_s(info, via)
    margin = default_margin(window) if margin_s is None else margin_s
    if seconds <= window - margin:
        return []
    message = budget_message(seconds, info, margin, via)
    return [BudgetWarning(run, seconds, window, margin, False, message, via)]


def _killed(
    seconds: float | None, run: int, signal: _Signal, info: JobInfo, margin_s: float | None
) -> BudgetWarning:
    window = window_s(info, signal.via)
    margin = default_margin(window) if margin_s is None else margin_s
    message = killed_message(seconds, info, margin, signal.via)
    return BudgetWarning(run, seconds, window, margin, True, message, signal.via)
