"""What a run knows of the runs of its job before it, from the job folder: whether the job
has ended already (a scheduler may start an ended job again), and runs that ended without a
word; and the heartbeat that lets the next run say how long this one worked.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from .events import append_event, read_events, summarize
from .files import open_private_append
from .paths import JobPaths

#: How often a running job touches its heartbeat file (its last sign of life, if it dies).
HEARTBEAT_S = 30.0


def ended_already(paths: JobPaths, restart: int) -> str | None:
    """How the job ended in a run before run ``restart``, if it has (task 0's result is
    written, or a task completed for the job, failed or was cancelled); None while it has not.

    A scheduler may start an ended job again: Slurm 24.05+ requeues a batch job that exits
    during a preemption's grace time, an administrator may requeue any job. That run must not
    call a completed callable again, nor overwrite its result. (In a run that task 0 has
    started, the other tasks may find its result already: that run is theirs too.)
    """
    events = read_events(paths.events)
    runs = [e["run"] for e in events if e["event"] == "started" and e.get("task", 0) == 0]
    if runs and runs[-1] >= restart:
        return None
    if paths.for_task(0).result_pickle.exists():
        return "its result is written"
    for event in events:
        name = event["event"]
        if name in ("failed", "cancelled") or (name == "completed" and not event.get("task")):
            return f"it {name}"
    return None


def record_lost_runs(paths: JobPaths, restart: int) -> None:
    """Say so when this run starts after requeues nobody recorded (SIGKILL, node failure...).

    ``restart`` is the scheduler's count of earlier runs; each one the events do not know a
    ``requeued`` of gets a ``requeued {reason: unknown}`` event, with ``lost_progress`` (no
    checkpoint was written after that run started) and how long the lost run had worked.
    """
    events = read_events(paths.events)
    missing = restart - summarize(events).requeues
    if missing <= 0:
        return
    started = [e for e in events if e["event"] == "started" and e.get("task", 0) == 0]
    last_start = started[-1] if started else None
    fields: dict[str, Any] = {"reason": "unknown", "lost_progress": True}
    if last_start is not None:
        after = [e for e in events if e["t"] >= last_start["t"]]
        fields["lost_progress"] = not any(
            e["event"] == "checkpoint" and e.get("requeue") for e in after
        )
        last_sign = max([e["t"] for e in after] + _mtimes(paths))
        fields["worked_s"] = round(max(0.0, last_sign - float(last_start["t"])), 1)
    for number in range(restart - missing + 1, restart + 1):
        append_event(paths.events, "requeued", run=number, **fields)
        fields.pop("worked_s", None)  # the time belongs to the last run that started


def start_heartbeat(path: Path, period_s: float = HEARTBEAT_S) -> None:
    """Touch ``path`` now and every ``period_s`` from a daemon thread, while the process lives.

    Its modification time is the run's last sign of life: a run killed without a word (SIGKILL,
    a node that died) is known to have worked until then.
    """

    def beat() -> None:
        while True:
            with contextlib.suppress(OSError):
                os.close(open_private_append(path))  # created 0600 like every job file
                os.utime(path)
            time.sleep(period_s)

    threading.Thread(target=beat, name="jupyter_slurm_ckpt-heartbeat", daemon=True).start()


def _mtimes(paths: JobPaths) -> list[float]:
    """When the job's heartbeat and the task's logs were last written (signs of life)."""
    found = []
    for path in (paths.heartbeat, paths.stdout, paths.stderr):
        with contextlib.suppress(OSError):
            found.append(path.stat().st_mtime)
    return found
