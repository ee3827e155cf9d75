"""``report_progress``: a job says how far it got, in its own event log.

A ``progress`` event (``{"event": "progress", "run": 2, "epoch": 7}``) is appended to the job's
``<id>_events.jsonl``. The job widget shows it in the timeline, the checkpoint verification
report shows where each run resumed, and a notebook can read it back with ``job.events()``.
"""

from __future__ import annotations

import os
from typing import Any

from .environment import ENV_FOLDER, JobEnvironment
from .events import append_event

_RESERVED = frozenset({"t", "event", "run"})


def report_progress(**fields: Any) -> None:
    """Record how far the running job got, e.g. ``report_progress(epoch=7)``.

    Call it where a run starts (after restoring its checkpoint: "this run resumed at epoch 7"),
    and if you like at milestones; each call is one line in the event log, so not in a tight
    loop. Values should be JSON-friendly (others are stored as their ``str``). Only the job's
    first task records; outside a job (a call run in the notebook) this does nothing.

    Raises
    ------
    ValueError
        If a field is named ``t``, ``event`` or ``run`` (the event's own keys), or if the
        fields do not fit in one line of the event log (about 3 kB as JSON; long text is
        shortened, but a long list is refused: report a summary of it).
    """
    clash = sorted(_RESERVED & set(fields))
    if clash:
        raise ValueError(f"report_progress: {', '.join(clash)} is reserved; use another name")
    environment = JobEnvironment()
    # The job folder comes from the backend's environment: without it there is no log to add to.
    if not fields or ENV_FOLDER not in os.environ or environment.global_rank != 0:
        return
    append_event(environment.paths.events, "progress", run=environment.restart_count, **fields)
