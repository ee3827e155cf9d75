"""The job's event log, ``<id>_events.jsonl``: one JSON object a line, appended atomically.

Events (``event`` key), each with ``t`` (unix time):
submitted, started (run, node, pid; ``task`` for tasks other than 0: each task says it started),
signal (reason: preemption|timeout),
checkpoint (seconds: checkpoint() and the durable write of its payload, write_s: the write;
requeue, bytes), requeued (run, timeouts_left; ``by: scheduler`` when Slurm
requeued the job itself, ``before_call`` when the signal came before the callable was called,
``reason: unknown`` + ``lost_progress`` + ``worked_s`` for a run that ended without a word),
not_requeued (reason),
completed, failed (state, reason), cancelled; resubmitted (job_id: the new job that continues
from the last checkpoint, ``job.resubmit()``; whose ``submitted`` has ``resubmission_of``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import append_line

#: Each event is one write() of at most this many bytes on an O_APPEND descriptor: a local
#: filesystem appends it whole even while others append, and a network filesystem sends one
#: this small in one request. (PIPE_BUF bounds the atomic writes to pipes, not to files.)
MAX_LINE_BYTES = 3500
_KEPT = ("t", "event")  # never shortened
_MIN_SHORTENED = 16  # text this short is not halved again

TERMINAL_EVENTS = ("completed", "failed", "cancelled")

_NUMBER = (int, float)
#: The types of the fields the lifecycle events carry (``progress`` events carry the user's
#: own fields). A line whose field has another type is damaged: it is skipped like garbage,
#: so that no reader has to guard every field it uses.
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "t": _NUMBER,
    "run": int,
    "task": int,
    "pid": int,
    "bytes": int,
    "array_size": int,
    "timeouts_left": int,
    "seconds": _NUMBER,
    "write_s": _NUMBER,
    "requeue": bool,
    "from_scratch": bool,
    "before_call": bool,
    "lost_progress": bool,
    "worked_s": _NUMBER,
    "via": str,
    "reason": str,
    "node": str,
    "state": str,
    "by": str,
    "cluster": str,
    "name": str,
    "resubmission_of": str,
    "job_id": str,
}
_FREE_FORM_EVENTS = ("progress",)


def is_valid_event(record: Any) -> bool:
    """Whether a parsed line is an event: a dict with a name, a time, and well-typed fields."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return False
    checked = ("t", "run") if record["event"] in _FREE_FORM_EVENTS else FIELD_TYPES
    return "t" in record and all(
        isinstance(record[key], FIELD_TYPES[key]) for key in checked if key in record
    )


def append_event(path: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event and return it; over-long text fields are shortened, never split.

    Values JSON does not know are stored as their ``str`` (text, so shortened like text).

    Raises
    ------
    ValueError
        When the event does not fit in one line even with its text shortened (a long list,
        many fields): nothing is written.
    """
    record: dict[str, Any] = json.loads(
        json.dumps({"t": round(time.time(), 3), "event": event, **fields}, default=str)
    )
    line = json.dumps(record)
    while len(line.encode("utf-8")) > MAX_LINE_BYTES:
        # Halve the longest text that is still worth shortening: each pass makes one shorter,
        # so the loop ends (the name and the time are never touched).
        longest = max(
            (k for k, v in record.items() if k not in _KEPT and isinstance(v, str)),
            key=lambda key: len(record[key]),
            default=None,
        )
        if longest is None or len(record[longest]) <= _MIN_SHORTENED:
            raise ValueError(_too_large(event, record, len(line.encode("utf-8"))))
        record[longest] = record[longest][: len(record[longest]) // 2] + "…"
        line = json.dumps(record)
    append_line(path, line)
    return record


def _too_large(event: str, record: dict[str, Any], size: int) -> str:
    largest = max(
        (key for key in record if key not in _KEPT),
        key=lambda key: len(json.dumps(record[key])),
        default="event",
    )
    return (
        f"the {event!r} event takes {size} bytes as JSON, over the {MAX_LINE_BYTES} bytes a line "
        f"of the event log holds (largest field {largest!r}): record a summary of it instead, "
        "e.g. the last value of a list"
    )


class EventReader:
    """Incremental reader: each :meth:`read` parses only what was appended since the last.

    A partial last line (a writer killed mid-line) is left for the next read; a line that is
    complete but not an event (not JSON, or see :func:`is_valid_event`) is counted in
    :attr:`bad_lines` and skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.events: list[dict[str, Any]] = []
        self.bad_lines = 0
        self._offset = 0
        self._signature: tuple[int, int] | None = None
        # The widget's watcher thread and the main thread read the same job's events.
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def read(self) -> list[dict[str, Any]]:
        """All events so far (a list that grows; do not mutate it)."""
        with self._lock:
            return self._read()

    def _read(self) -> list[dict[str, Any]]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return self.events
        signature = (info.st_size, info.st_mtime_ns)
        if signature == self._signature:
            return self.events
        if info.st_size < self._offset:  # replaced or truncated: start again
            self.events, self.bad_lines, self._offset = [], 0, 0
        with open(self.path, "rb") as stream:
            stream.seek(self._offset)
            chunk = stream.read()
        end = chunk.rfind(b"\n") + 1
        for raw in chunk[:end].splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                self.bad_lines += 1
                continue
            if is_valid_event(record):
                self.events.append(record)
            else:
                self.bad_lines += 1
        self._offset += end
        self._signature = signature
        return self.events


def read_events(path: Path) -> list[dict[str, Any]]:
    """All well-formed events of a log (one-shot read)."""
    return EventReader(path).read()


@dataclass
class EventSummary:
    """What the event log says about a job, for states, counters and explanations."""

    runs: int = 0
    requeues: int = 0
    preemptions: int = 0
    timeouts: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    node: str | None = None
    terminal: dict[str, Any] | None = None
    not_requeued_reason: str | None = None
    last: dict[str, Any] | None = None
    checkpoint_seconds: list[float] = field(default_factory=list)

    @property
    def restart_count(self) -> int:
        """How many times the job was requeued (Slurm's ``Restarts``)."""
        return self.requeues

    def agree(self, state: str) -> str:
        """``state``, read a moment before these events, made to agree with them: RUNNING is
        REQUEUED when they end with a requeue whose next run has not started yet."""
        if state == "RUNNING" and 0 < self.runs <= self.requeues:
            return "REQUEUED"
        return state


def resubmitted_as(events: list[dict[str, Any]]) -> str | None:
    """The id of the job that continues this one (its ``resubmitted`` event), if any."""
    found = [e.get("job_id") for e in events if e.get("event") == "resubmitted"]
    return str(found[-1]) if found else None


@dataclass
class LastRun:
    """What the events say of the job's last run (the one that started last): only its tasks'
    ends and results count for the job's end, never those of a run a requeue followed."""

    number: int = 0
    started: set[int] = field(default_factory=set)  # the tasks that said they started in it
    ends: dict[int, bool] = field(default_factory=dict)  # task -> completed (else failed)

    def begins(self, record: dict[str, Any]) -> bool:
        """Whether ``record`` begins a later run (a ``started`` or ``requeued`` naming a run
        past this one): then the ends recorded so far belong to a run that is over."""
        run = record.get("run")
        if record.get("event") not in ("started", "requeued") or not isinstance(run, int):
            return False
        return run > self.number

    def add(self, record: dict[str, Any]) -> None:
        """Fold one more event in (events in the order they were recorded)."""
        if self.begins(record):
            self.number, self.started, self.ends = int(record["run"]), set(), {}
        ended = task_ended(record)
        if record.get("event") == "started":
            self.started.add(int(record.get("task", 0)))
        elif ended is not None:
            self.ends[ended] = record["event"] == "completed"

    def holds_result_of(self, task: int) -> bool:
        """Whether a result file of ``task`` on disk was written in this run: each task
        removes its earlier run's result before it says it started (``worker.run_task``)."""
        return task in self.started or task in self.ends


def task_ended(record: dict[str, Any]) -> int | None:
    """The task whose end ``record`` is (a ``completed``, or a ``failed`` naming its task);
    None for any other event (a job-wide ``failed`` or ``cancelled``...)."""
    name = record.get("event")
    if name == "completed" or (name == "failed" and "task" in record):
        return int(record.get("task", 0))
    return None


def last_run(events: list[dict[str, Any]]) -> LastRun:
    """The job's last run, as its events tell it (see :class:`LastRun`)."""
    run = LastRun()
    for record in events:
        run.add(record)
    return run


def _ends_first(record: dict[str, Any], terminal: dict[str, Any] | None) -> bool:
    """Whether the end ``record`` is the job's end rather than ``terminal`` (the one found
    before): a failure or cancel after a task completed (another task of it was killed)."""
    return terminal is None or (terminal["event"] == "completed" != record["event"])


def summarize(events: list[dict[str, Any]]) -> EventSummary:
    """Fold an event list into counters; the task-0 view (tasks > 0 only add their ends).

    The ``terminal`` event is the job's first end: a job-wide ``failed`` or ``cancelled``,
    or the first task end of the last run (a task that completed in a run that was requeued
    did not end the job), a later failure or cancel before a ``completed``."""
    summary = EventSummary()
    run = LastRun()
    for record in events:
        name = record.get("event")
        summary.last = record
        if run.begins(record) and summary.terminal and task_ended(summary.terminal) is not None:
            summary.terminal = summary.ended_at = None
        run.add(record)
        if name == "submitted":
            summary.submitted_at = record.get("t")
        elif name == "started" and record.get("task", 0) == 0:
            summary.runs += 1
            summary.started_at = summary.started_at or record.get("t")
            summary.node = record.get("node", summary.node)
        elif name == "signal" and record.get("task", 0) == 0:
            if record.get("reason") == "timeout":
                summary.timeouts += 1
            else:
                summary.preemptions += 1
        elif name == "checkpoint":
            summary.checkpoint_seconds.append(float(record.get("seconds", 0.0)))
        elif name == "requeued":
            summary.requeues += 1
        elif name == "not_requeued":
            summary.not_requeued_reason = record.get("reason")
        elif name in TERMINAL_EVENTS and _ends_first(record, summary.terminal):
            summary.terminal = record
            summary.ended_at = record.get("t")
    return summary


def recorded_end(events: Iterable[dict[str, Any]], num_tasks: int) -> tuple[str, float] | None:
    """The end a job's events prove, and when it was recorded; None while they prove none.

    Every task's outcome recorded in the last run (``completed``, or ``failed`` naming its
    task) ends the job: COMPLETED when all completed, else FAILED. Else the first end of
    :func:`summarize` that is not a ``completed`` ends it (CANCELLED, or the state it names).
    A job's folder state (``Job.state``) agrees wherever this says the job ended; it may find
    an end this misses (a result file whose event a killed worker did not write), which only
    the job's own reading tells.
    """
    events = list(events)
    run = last_run(events)
    if all(task in run.ends for task in range(num_tasks)):
        ends = [e for e in events if e.get("event") in TERMINAL_EVENTS]
        return ("COMPLETED" if all(run.ends.values()) else "FAILED"), float(ends[-1]["t"])
    first = summarize(events).terminal
    if first is None or first["event"] == "completed":
        return None
    if first["event"] == "cancelled":
        return "CANCELLED", float(first["t"])
    return str(first.get("state", "FAILED")), float(first["t"])
