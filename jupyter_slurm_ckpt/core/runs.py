"""What a run knows of the runs of its job before it, from the job folder: whether the job
has ended already (a scheduler may start an ended job again), and runs that ended without a
word; and the heartbeat that lets the next run say how long this one worked.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .events import append_event, last_run, read_events, recorded_end, summarize
from .files import open_private_append
from .paths import JobPaths

#: How often a running job touches its heartbeat file (its last sign of life, if it dies).
HEARTBEAT_S = 30.0


def ended_already(paths: JobPaths, restart: int, num_tasks: int) -> str | None:
    """How the job's last run before run ``restart`` ended it, if it did (every task's result
    of that run is written, or its events prove the job's end: see ``recorded_end``); None
    while it did not.

    A scheduler may start an ended job again: Slurm 24.05+ requeues a batch job that exits
    during a preemption's grace time, an administrator may requeue any job. That run must not
    call a completed callable again, nor overwrite its result. A task that completed in a run
    that did not end the job (another task was checkpointed or preempted) ended nothing: the
    next run runs every task. (In a run that task 0 has started, the other tasks may find its
    result already: that run is theirs too.)
    """
    events = read_events(paths.events)
    runs = [e["run"] for e in events if e["event"] == "started" and e.get("task", 0) == 0]
    if runs and runs[-1] >= restart:
        return None
    end = recorded_end(events, num_tasks)
    if end is not None:
        return f"it ended {end[0]}"
    if results_of_last_run(paths, events, num_tasks) == list(range(num_tasks)):
        return "its results are written"
    return None


def results_of_last_run(
    paths: JobPaths, events: list[dict[str, Any]], num_tasks: int, tasks: Iterable[int] = ()
) -> list[int]:
    """Which of ``tasks`` (default: all the job's) have a result file that the job's last run
    wrote: a task removes its result of an earlier run before it says it started in a new
    one, so a result there is this run's once the task started (or ended) in it. A job of one
    task needs no ``events``: its result always ends the job (pass ``[]``)."""
    tasks = list(tasks) or list(range(num_tasks))
    written = [task for task in tasks if paths.for_task(task).result_pickle.exists()]
    if num_tasks == 1 or not written:
        return written
    run = last_run(events)
    return [task for task in written if run.holds_result_of(task)]


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
