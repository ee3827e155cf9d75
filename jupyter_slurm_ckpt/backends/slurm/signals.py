"""Why a signal came to a Slurm job, told from Slurm's view of it (``scontrol show job``).

Slurm sends USR2 before the time limit (``--signal``) and, on clusters that have it, before a
preemption; SIGTERM when it ends a run. Neither says why: these functions tell it from the
fields ``scontrol show job`` shows right then (measured on Slurm 22.05, see the reference notes).
"""

from __future__ import annotations

import re
from datetime import datetime

from ...core.worker import Termination

#: Slack on Slurm's warning: limits are checked every 30 s, so the warning comes up to ~30 s
#: after ``EndTime - delay`` (measured: 12-29 s after start for ``--time=1 --signal=USR2@30``).
WARNING_SLACK_S = 35.0


def classify_signal(fields: dict[str, str] | None, delay_s: float, now: float) -> str:
    """Why a USR2 came that no ``_interrupt`` asked for: ``"timeout"`` or ``"preemption"``.

    A preempted job has a ``PreemptTime`` (Slurm also moves its EndTime to the end of the grace
    period, so the remaining time alone would say "timeout"). Otherwise the warning of the time
    limit comes ``delay_s`` before EndTime; a job far from its limit was preempted.
    """
    if fields is None:
        return "preemption"
    preempted = fields.get("PreemptTime", "None")
    if preempted not in ("None", "Unknown", ""):
        return "preemption"
    end = _slurm_time(fields.get("EndTime", ""))
    if end is None:
        return "preemption"
    return "timeout" if end - now <= delay_s + WARNING_SLACK_S else "preemption"


def classify_termination(fields: dict[str, str] | None, restart: int) -> Termination:
    """Why a SIGTERM came, from ``scontrol show job`` of this job asked right then.

    Measured on Slurm 22.05 at the SIGTERM (the job is COMPLETING by then in every case):
    a preemption with ``PreemptMode=REQUEUE`` has requeued the job already (``Restarts`` is
    one more than this run's ``SLURM_RESTART_COUNT``), one with ``PreemptMode=CANCEL`` shows a
    ``PreemptTime``, the time limit shows ``Reason=TimeLimit``; anything else is a cancellation
    (``scancel``). ``fields`` None (Slurm did not answer) gives ``"unknown"``.
    """
    if fields is None:
        return Termination("unknown")
    if fields.get("Reason") == "TimeLimit":
        return Termination("timeout")
    restarts = fields.get("Restarts", "")
    if restarts.isdigit() and int(restarts) > restart:
        return Termination("preemption", requeued=True)
    if fields.get("PreemptTime", "None") not in ("None", "Unknown", ""):
        return Termination("preemption")
    return Termination("cancelled")


def _slurm_time(text: str) -> float | None:
    # Slurm prints local time without a zone: 2026-11-28T22:10:46.
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", text):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
