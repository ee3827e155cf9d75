"""Why a signal came to a Slurm job, told from what Slurm says of it right then
(:func:`.commands.job_facts`) or, when Slurm cannot answer, from what the job knew when it
started: the end of its time limit.

Slurm sends USR2 before the time limit (``--signal``) and, on clusters that have it, before a
preemption; SIGTERM when it ends a run. Neither says why (measured on Slurm 22.05 and 24.11, see
the reference notes).
"""

from __future__ import annotations

import re
from datetime import datetime

from ...core.runtime import Termination

#: Slack on Slurm's warning: limits are checked every 30 s, so the warning comes up to ~30 s
#: after ``EndTime - delay`` (measured: 12-29 s after start for ``--time=1 --signal=USR2@30``).
WARNING_SLACK_S = 35.0
#: A SIGTERM this close to the end of the time limit, or after it, is the limit's (Slurm ends
#: a run up to 30 s after its EndTime, at its next check).
LIMIT_SLACK_S = 5.0
#: What a SIGTERM means when Slurm still says the job runs: Slurm is not ending it.
NOT_FROM_SLURM = (
    "SIGTERM while Slurm says the job runs, so not Slurm ending it (srun stops every task of a "
    "job when one ends abnormally; or someone signalled this process)"
)
NO_ANSWER = "Slurm could not be asked why the run ends"


def classify_signal(
    facts: dict[str, str] | None, delay_s: float, now: float, expected_end: float | None
) -> str:
    """Why a USR2 came that no ``_interrupt`` asked for: ``"timeout"`` or ``"preemption"``.

    A preempted job has a ``PreemptTime`` (Slurm also moves its EndTime to the end of the grace
    period, so the remaining time alone would say "timeout"). Otherwise the warning of the time
    limit comes ``delay_s`` before EndTime; a job far from its limit was preempted. ``facts``
    None (Slurm did not answer): ``expected_end``, the end the run knew when it started.
    """
    if facts is not None and slurm_time(facts.get("PreemptTime", "")) is not None:
        return "preemption"
    end = expected_end if facts is None else slurm_time(facts.get("EndTime", ""))
    if end is None:
        return "preemption"
    return "timeout" if end - now <= delay_s + WARNING_SLACK_S else "preemption"


def classify_termination(
    facts: dict[str, str] | None, restart: int, now: float, expected_end: float | None
) -> Termination:
    """Why a SIGTERM came, from Slurm's facts about this job asked right then.

    Measured at the SIGTERM: a preemption with ``PreemptMode=REQUEUE`` has requeued the job
    already (``Restarts`` is one more than this run's ``SLURM_RESTART_COUNT``; 24.11 sends a
    stock preemption's SIGTERM at the start of the grace time, with a ``PreemptTime``), one with
    ``PreemptMode=CANCEL`` shows a ``PreemptTime``, the time limit ``Reason=TimeLimit``, a
    cancellation a job that is no longer RUNNING (COMPLETING). A job that is still RUNNING is
    not being ended by Slurm: ``"unknown"``, as when Slurm does not answer (``facts`` None) and
    the time limit (``expected_end``) is not reached.
    """
    if facts is None:
        if expected_end is not None and now >= expected_end - LIMIT_SLACK_S:
            return Termination("timeout")
        return Termination("unknown", detail=NO_ANSWER)
    if facts.get("Reason") == "TimeLimit":
        return Termination("timeout")
    restarts = facts.get("Restarts", "")
    if restarts.isdigit() and int(restarts) > restart:
        return Termination("preemption", requeued=True)
    if slurm_time(facts.get("PreemptTime", "")) is not None:
        return Termination("preemption")
    if facts.get("JobState") == "RUNNING":
        return Termination("unknown", detail=NOT_FROM_SLURM)
    return Termination("cancelled")


def slurm_time(text: str) -> float | None:
    """A time as our Slurm calls print it (Unix seconds, ``commands.TIME_FORMAT``) or as Slurm
    does by default (local time without a zone, ``2026-11-28T22:10:46``); None when unset
    (``N/A``, ``None``, ``Unknown``)."""
    if text.isdigit():
        return float(text)
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", text):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
