"""The event timeline: one readable row per event of the job's ``<id>_events.jsonl``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.payload import format_size
from ..core.progress import step_reports
from .words import format_count, format_duration, plural

TIMELINE_MAX_ROWS = 60


@dataclass(frozen=True)
class TimelineRow:
    """One line of the event timeline: when, what, and the details worth reading."""

    t: float
    event: str
    details: str

    @property
    def clock(self) -> str:
        """Local wall-clock time of the event (HH:MM:SS)."""
        return time.strftime("%H:%M:%S", time.localtime(self.t))


def timeline_rows(events: Sequence[dict[str, Any]], num_tasks: int = 1) -> list[TimelineRow]:
    """The event timeline: one readable row per recorded event.

    ``step`` reports (one a second while a loop runs) are folded: the first of each run says
    where the run began or resumed, a checkpoint signal says the step it interrupted, and the
    progress bar shows the rest.
    """
    steps = {id(record) for record in step_reports(events)}
    rows = []
    latest: dict[str, Any] | None = None
    runs_seen: set[int] = set()
    for record in events:
        t = float(record.get("t", 0.0))
        if id(record) in steps:
            latest = record
            run = int(record.get("run", 0))
            if run not in runs_seen:
                runs_seen.add(run)
                began = "resumed at" if run else "began at"
                rows.append(TimelineRow(t, "progress", f"run #{run} {began} {step_words(record)}"))
            continue
        event, details = describe_event(record, num_tasks)
        if record.get("event") == "signal" and latest is not None and not record.get("task"):
            details = ", ".join(filter(None, [details, f"at {step_words(latest)}"]))
        rows.append(TimelineRow(t, event, details))
    return rows


def step_words(record: dict[str, Any]) -> str:
    """'step 120 of 200' for a progress event with a step (and maybe a total)."""
    words = f"step {format_count(float(record['step']))}"
    total = record.get("total")
    if isinstance(total, (int, float)) and not isinstance(total, bool) and total > 0:
        words += f" of {format_count(float(total))}"
    return words


def describe_event(record: dict[str, Any], num_tasks: int = 1) -> tuple[str, str]:
    """(event, details) words for one event of the events file."""
    name = str(record.get("event", "?"))
    task = record.get("task", 0)
    on_task = f"task {task}" if num_tasks > 1 or task else ""
    if name == "submitted":
        parts = [f"{record.get('cluster', '?')} backend"]
        if record.get("array_size"):
            parts.append(f"element of an array of {record['array_size']}")
        if "bytes" in record:
            parts.append(f"payload {format_size(int(record['bytes']))}")
        if record.get("resubmission_of"):
            parts.append(f"continues job {record['resubmission_of']} from its last checkpoint")
        return name, ", ".join(parts)
    if name == "resubmitted":
        return name, f"as job {record.get('job_id', '?')}, from the last checkpoint"
    if name == "started":
        run = int(record.get("run", 0))
        where = f"run #{run} on {record.get('node', '?')}"
        if "pid" in record:
            where += f" (pid {record['pid']})"
        if on_task:
            where += f", {on_task}"
        return ("resumed" if run > 0 else "started"), where
    if name == "signal":
        return f"{record.get('reason', '?')} signal", on_task
    if name == "checkpoint":
        return name, _checkpoint_words(record)
    if name == "requeued":
        words = f"next: run #{record.get('run', '?')}"
        if "timeouts_left" in record:
            left = int(record["timeouts_left"])
            words += f", {plural(left, 'timeout')} left"
        if record.get("from_scratch"):
            words += ", restarts from scratch (no checkpoint method)"
        if record.get("before_call"):
            words += ", as submitted (the signal came before the call started)"
        if record.get("reason") == "unknown":
            lost = "lost its progress" if record.get("lost_progress") else "kept its checkpoint"
            worked = record.get("worked_s")
            words = f"the run before ended without a word and {lost}" + (
                f" (it had worked {format_duration(float(worked))})" if worked is not None else ""
            )
        return name, words
    if name == "not_requeued":
        return "not requeued", str(record.get("reason", ""))
    if name == "completed":
        return name, on_task
    if name == "failed":
        parts = [str(record[key]) for key in ("state", "reason") if record.get(key)]
        return name, ": ".join(parts + ([on_task] if on_task else []))
    if name == "cancelled":
        return name, f"by {record['by']}" if record.get("by") else ""
    extra = {k: v for k, v in record.items() if k not in ("t", "event")}
    return name, ", ".join(f"{key}={value}" for key, value in extra.items())


def _checkpoint_words(record: dict[str, Any]) -> str:
    """'checkpoint() and its write took 2.51 s (the write 2.50 s), new payload 512.0 MB'."""
    words = f"checkpoint() and its write took {float(record.get('seconds', 0.0)):.2f} s"
    if "write_s" in record:
        words += f" (the write {float(record['write_s']):.2f} s)"
    if not record.get("requeue", True):
        return f"{words}, no requeue"
    if "bytes" in record:
        words += f", new payload {format_size(int(record['bytes']))}"
    return words
