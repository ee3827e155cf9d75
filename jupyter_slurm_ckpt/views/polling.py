"""How often Slurm is asked about jobs: one setting for the kernel's widgets and the sidebar.

``%config SchedulerPolling.poll_liveness_s = 120`` (or ``c.SchedulerPolling...`` in
``ipython_config.py`` / ``jupyter_server_config.py``) applies to every view of the process:
``SlurmMagics`` and ``SlurmJobsConfig`` both are a ``SchedulerPolling``, so their own sections
work too. The job folder tells the rest (see ``backends.slurm.records.PollPolicy``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from traitlets import Float, TraitError, observe, validate
from traitlets.config import Configurable

from ..backends.slurm.records import PollPolicy
from ..backends.slurm.state import STATES


class SchedulerPolling(Configurable):
    """The scheduler-polling cadence of this process (see the module docstring)."""

    poll_pending_s = Float(
        PollPolicy.pending_s,
        help="How often Slurm is asked about a job that has not started (its state and "
        "reason), in seconds.",
    ).tag(config=True)
    poll_liveness_s = Float(
        PollPolicy.liveness_s,
        help="How often Slurm is asked whether a running job is still alive, in seconds: a "
        "job killed without a word (OOM, scancel -s KILL, a lost node) shows within this long. "
        "What the job writes itself (started, signals, its end) shows within a second.",
    ).tag(config=True)

    @validate("poll_pending_s", "poll_liveness_s")
    def _positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"{proposal['trait'].name} must be > 0, not {value}")
        return value

    @observe("poll_pending_s", "poll_liveness_s")
    def _changed(self, change: dict[str, Any]) -> None:
        # Only what is configured (or changed) applies: an object made with the defaults does
        # not undo a policy set in code.
        field = str(change["name"]).removeprefix("poll_")
        STATES.policy = replace(STATES.policy, **{field: float(change["new"])})
