"""The checkpoint budget: does ``checkpoint()`` finish before the hard kill that follows the signal?

On a cluster the checkpoint signal comes ``signal_delay_s`` seconds before the job is killed (at
most half of a short time limit: :meth:`JobInfo.effective_signal_delay_s`). A ``checkpoint()``
that takes longer is killed half-written, and the next run resumes from a stale or broken
checkpoint. :func:`check_budget` reads a job's events and says so plainly, with both numbers,
for the job widget and the checkpoint verification report. Imports neither IPython nor widgets.
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
    """One ``checkpoint()`` call that did not fit in the time the signal leaves.

    Attributes
    ----------
    run
        The run (0 for the first) whose checkpoint it was.
    seconds
        How long ``checkpoint()`` took; for a killed one, how long after the signal the run
        was killed.
    delay_s
        The time the signal leaves before the hard kill (the effective signal delay).
    margin_s
        The reserve the check keeps before the hard kill.
    killed
        True when the run was killed while ``checkpoint()`` was still running.
    message
        The warning, in words, with both numbers.
    """

    run: int
    seconds: float
    delay_s: float
    margin_s: float
    killed: bool
    message: str


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.1f}".removesuffix(".0")


def _budget_words(info: JobInfo, margin_s: float | None) -> str:
    """'30 s (signal_delay_s=30, margin 2 s)': the time the signal leaves, and why."""
    delay = info.effective_signal_delay_s()
    margin = default_margin(delay) if margin_s is None else margin_s
    words = f"signal_delay_s={_number(info.signal_delay_s)}"
    if delay < info.signal_delay_s and info.timeout_min is not None:
        words += f", capped at half the {_number(info.timeout_min)}-minute time limit"
    return f"{_number(delay)} s ({words}, margin {_number(margin)} s)"


def budget_message(seconds: float, info: JobInfo, margin_s: float | None = None) -> str:
    """The warning for a ``checkpoint()`` that took ``seconds`` in a job described by ``info``."""
    return (
        f"checkpoint() took {seconds:.1f} s but the signal leaves "
        f"{_budget_words(info, margin_s)} before the hard kill: on a real cluster this "
        "checkpoint would be killed half-written"
    )


def killed_message(seconds: float, info: JobInfo, margin_s: float | None = None) -> str:
    """The warning for a run killed ``seconds`` after its signal, ``checkpoint()`` unfinished."""
    return (
        f"checkpoint() was still running when the run was killed {seconds:.1f} s after the "
        f"signal (the signal leaves {_budget_words(info, margin_s)}): its checkpoint was cut "
        "off half-written; make checkpoint() faster or raise signal_delay_s"
    )


def check_budget(
    events: Iterable[dict[str, Any]], info: JobInfo, margin_s: float | None = None
) -> list[BudgetWarning]:
    """Every ``checkpoint()`` of a job that took longer than its signal leaves (minus a margin).

    Parameters
    ----------
    events
        The job's events (``job.events()``).
    info
        The job's description (``job.info``): its effective signal delay is the budget.
    margin_s
        Reserve kept before the hard kill; default :func:`default_margin` of the delay.

    Returns
    -------
    list of BudgetWarning
        Empty when every checkpoint fitted. A run killed after its signal without a
        ``checkpoint`` event (``checkpoint()`` never returned) is reported as killed.
    """
    delay = info.effective_signal_delay_s()
    margin = default_margin(delay) if margin_s is None else margin_s
    warnings: list[BudgetWarning] = []
    run = 0
    signal_at: float | None = None  # a task-0 signal whose checkpoint has not ended yet
    for record in events:
        name = record.get("event")
        if name == "started" and record.get("task", 0) == 0:
            run = int(record.get("run", run))
            signal_at = None
        elif name == "signal" and record.get("task", 0) == 0:
            signal_at = float(record.get("t", 0.0))
        elif name == "checkpoint":
            signal_at = None
            seconds = float(record.get("seconds", 0.0))
            if seconds > delay - margin:
                message = budget_message(seconds, info, margin)
                warnings.append(BudgetWarning(run, seconds, delay, margin, False, message))
        elif name in ("not_requeued", "cancelled"):
            signal_at = None  # refused before checkpoint() was called, or stopped by the user
        elif name == "failed" and signal_at is not None and record.get("state") in _KILLED:
            seconds = max(0.0, float(record.get("t", signal_at)) - signal_at)
            message = killed_message(seconds, info, margin)
            warnings.append(BudgetWarning(run, seconds, delay, margin, True, message))
            signal_at = None
    return warnings
