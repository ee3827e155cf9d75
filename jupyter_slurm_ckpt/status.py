"""A job's status as plain data, and its text and HTML renderings.

One snapshot (:class:`JobStatus`) feeds every view: the live widget builds its children from the
same HTML pieces, a plain IPython terminal gets :func:`render_text`, and :func:`render_html` is the
fallback a saved notebook shows without a kernel. Imports neither IPython nor ipywidgets.
"""

from __future__ import annotations

import html
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .core.budget import check_budget
from .core.errors import FailedJobError, UncompletedJobError
from .core.events import summarize
from .core.job import FINAL_STATES, Job

LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 16_384
RESULT_MAX_CHARS = 2_000
FAILURE_MAX_CHARS = 4_000
TIMELINE_MAX_ROWS = 60
#: Results bigger than this are not unpickled just to show their repr.
RESULT_MAX_LOAD_BYTES = 50 * 1024 * 1024

STATE_COLORS = {
    "PENDING": "#8a6d00",
    "QUEUED": "#8a6d00",  # a debug job's PENDING
    "RUNNING": "#1565c0",
    "REQUEUED": "#6a1b9a",
    "COMPLETED": "#2e7d32",
    "DONE": "#2e7d32",  # a debug job's COMPLETED
    "FAILED": "#c62828",
    "OUT_OF_MEMORY": "#c62828",
    "CANCELLED": "#616161",
    "TIMEOUT": "#e65100",
    "PREEMPTED": "#e65100",
}
_DEFAULT_COLOR = "#616161"


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


@dataclass(frozen=True)
class JobStatus:
    """Everything a view shows about one job at one moment.

    ``elapsed_s`` is left out of comparisons: two snapshots are equal when nothing but the clock
    moved, which is what the watcher's back-off needs.
    """

    job_id: str
    name: str
    backend: str
    state: str
    done: bool = False
    pending_reason: str | None = None
    node: str | None = None
    started: bool = False
    runs: int = 0
    requeues: int = 0
    preemptions: int = 0
    timeouts: int = 0
    max_num_timeout: int = 3
    not_requeued_reason: str | None = None
    budget_warnings: tuple[str, ...] = ()
    terminal_seen: bool = False
    timeline: tuple[TimelineRow, ...] = ()
    stdout_tail: str = ""
    stderr_tail: str = ""
    result: str | None = None
    failure: str | None = None
    problem: str | None = None
    scheduler_problem: str | None = None
    elapsed_s: float | None = field(default=None, compare=False)


# -- collecting ---------------------------------------------------------------------------------


def collect_status(
    job: Job[Any],
    state: str | None = None,
    *,
    details: bool = True,
    previous: JobStatus | None = None,
    now: float | None = None,
) -> JobStatus:
    """Read one job's status from its folder (and its backend, unless ``state`` is given).

    Parameters
    ----------
    job
        The job to read.
    state
        The job's state when already known (from a batched scheduler poll); else ``job.state``.
    details
        Also read the event timeline and the log tails (a compact table does not need them).
    previous
        The last snapshot of the same job: a finished job's result is not loaded twice.
    now
        The clock used for the elapsed time (default: ``time.time()``).
    """
    now = time.time() if now is None else now
    info = job.info
    state = job.state if state is None else state
    events = job.events()
    summary = summarize(events)
    done = state in FINAL_STATES
    if summary.started_at is not None:
        elapsed: float | None = (summary.ended_at or now) - summary.started_at
    elif done:
        elapsed = None
    else:  # still queued: show how long it has waited
        elapsed = now - (summary.submitted_at or info.submitted_at)
    result = failure = None
    if done:
        # Reuse the loaded outcome only once the folder has recorded the end (a result file
        # may show up on a shared filesystem a little after the scheduler says COMPLETED).
        if previous is not None and previous.done and previous.terminal_seen:
            result, failure = previous.result, previous.failure
        else:
            result, failure = _outcome(job)
    damaged = job.unreadable_event_lines
    problem = None
    if damaged:  # the view still shows what the readable lines say
        problem = f"{plural(damaged, 'damaged line')} skipped in {job.paths.events}"
    return JobStatus(
        job_id=job.job_id,
        name=info.name,
        backend=info.cluster,
        state=state,
        done=done,
        pending_reason=_pending_reason(job) if state == "PENDING" else None,
        node=summary.node,
        started=summary.started_at is not None,
        runs=summary.runs,
        requeues=summary.requeues,
        preemptions=summary.preemptions,
        timeouts=summary.timeouts,
        max_num_timeout=info.max_num_timeout,
        not_requeued_reason=summary.not_requeued_reason,
        budget_warnings=tuple(warning.message for warning in check_budget(events, info)),
        terminal_seen=summary.terminal is not None,
        timeline=tuple(timeline_rows(events, info.num_tasks)) if details else (),
        stdout_tail=tail(job.paths.stdout) if details else "",
        stderr_tail=tail(job.paths.stderr) if details else "",
        result=result,
        failure=failure,
        problem=problem,
        scheduler_problem=job.scheduler_problem if not done else None,
        elapsed_s=elapsed,
    )


def _pending_reason(job: Job[Any]) -> str | None:
    # Slurm jobs expose the scheduler's reason (Priority, Resources, ...); others have none.
    reason = getattr(job, "pending_reason", None)
    return str(reason) if reason else None


def _outcome(job: Job[Any]) -> tuple[str | None, str | None]:
    """(result repr, None) for a success, (None, traceback or reason) otherwise.

    A :attr:`~Job.read_only` job (the server's) is never unpickled: its events tell.
    """
    if job.read_only:
        terminal = job.summary().terminal
        if terminal is not None and terminal["event"] == "completed":
            return "<not loaded here: call job.result() to load it>", None
        reason = (terminal or {}).get("reason") or job.summary().not_requeued_reason
        return None, f"{job.state}: {reason or 'no reason recorded'}"
    for task in range(job.num_tasks):
        path = job.paths.for_task(task).result_pickle
        size = path.stat().st_size if path.exists() else 0
        if size > RESULT_MAX_LOAD_BYTES:
            return f"<result of {format_bytes(size)}: call job.result() to load it>", None
    try:
        values = job.results()
    except (FailedJobError, UncompletedJobError) as error:
        return None, truncate(str(error), FAILURE_MAX_CHARS, keep="end")
    shown: Any = values[0] if len(values) == 1 else values
    try:
        text = repr(shown)
    except Exception as error:  # a user __repr__ may fail: say so instead of failing the view
        text = f"<repr() of {type(shown).__name__} failed: {error!r}>"
    return truncate(text, RESULT_MAX_CHARS), None


def tail(path: Any, lines: int = LOG_TAIL_LINES, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``lines`` lines of a text file (read from its end only), or "" if none."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - max_bytes))
            chunk = stream.read()
    except OSError:
        return ""
    text = chunk.decode("utf-8", errors="replace")
    kept = text.splitlines()
    if size > max_bytes and kept:
        kept = kept[1:]  # the first line was cut by the seek
    return "\n".join(kept[-lines:])


def truncate(text: str, limit: int, keep: str = "start") -> str:
    """Shorten ``text`` to about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep == "end":
        return f"… ({cut} characters cut)\n{text[-limit:]}"
    return f"{text[:limit]}… ({cut} characters cut)"


# -- words ----------------------------------------------------------------------------------------


def timeline_rows(events: Sequence[dict[str, Any]], num_tasks: int = 1) -> list[TimelineRow]:
    """The event timeline: one readable row per recorded event."""
    return [
        TimelineRow(float(record.get("t", 0.0)), *describe_event(record, num_tasks))
        for record in events
    ]


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
            parts.append(f"payload {format_bytes(int(record['bytes']))}")
        return name, ", ".join(parts)
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
        words = f"checkpoint() took {float(record.get('seconds', 0.0)):.2f} s"
        if not record.get("requeue", True):
            return name, f"{words}, no requeue"
        if "bytes" in record:
            words += f", new payload {format_bytes(int(record['bytes']))}"
        return name, words
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


def counters_text(status: JobStatus) -> str:
    """'requeued 3×: 2 preemptions, 1 timeout of 3 allowed' (and why it stopped, if it did)."""
    text = (
        f"requeued {status.requeues}×: {plural(status.preemptions, 'preemption')}, "
        f"{plural(status.timeouts, 'timeout')} of {status.max_num_timeout} allowed"
    )
    if status.not_requeued_reason:
        text += f"; not requeued: {status.not_requeued_reason}"
    if status.scheduler_problem:
        text += f"\n⚠ {status.scheduler_problem}"
    for warning in status.budget_warnings:  # a checkpoint a real cluster would cut short
        text += f"\n⚠ {warning}"
    return text


def state_text(status: JobStatus) -> str:
    """The state, with Slurm's pending reason when there is one."""
    if status.pending_reason:
        return f"{status.state} ({status.pending_reason})"
    return status.state


def elapsed_text(status: JobStatus) -> str:
    """'12 s' while running or after the end; 'queued 12 s' before the first start."""
    if status.elapsed_s is None:
        return "–"
    duration = format_duration(status.elapsed_s)
    return duration if status.started else f"queued {duration}"


def format_duration(seconds: float) -> str:
    """A short human duration: 12 s, 3 min 04 s, 2 h 05 min, 1 d 03 h."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def format_bytes(size: int) -> str:
    """1.2 kB, 3.4 MB..."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def plural(count: int, word: str) -> str:
    """'1 timeout', '2 timeouts'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- text -----------------------------------------------------------------------------------------


def headline(status: JobStatus) -> str:
    """'train · job L12 · local · RUNNING'."""
    return f"{status.name} · job {status.job_id} · {status.backend} · {state_text(status)}"


def render_text(status: JobStatus) -> str:
    """The status for a terminal: headline, counters, timeline, result or failure."""
    lines = [headline(status)]
    lines.append(f"  elapsed {elapsed_text(status)} · node {status.node or '–'}")
    lines.append(f"  {counters_text(status)}")
    if status.problem:
        lines.append(f"  watcher: {status.problem}")
    rows = status.timeline[-TIMELINE_MAX_ROWS:]
    width = max((len(row.event) for row in rows), default=0)
    for row in rows:
        lines.append(f"  {row.clock}  {row.event:<{width}}  {row.details}".rstrip())
    if status.result is not None:
        lines.append(f"  result: {status.result}")
    if status.failure is not None:
        lines.append("  " + status.failure.replace("\n", "\n  "))
    return "\n".join(lines)


def render_table_text(statuses: Sequence[JobStatus]) -> str:
    """A job array or list of jobs as a text table."""
    lines = [summary_text(statuses)]
    for status in statuses:
        outcome = status.result if status.result is not None else _last_line(status.failure)
        lines.append(
            f"  {status.job_id:<10} {state_text(status):<12} {elapsed_text(status):<14} "
            f"requeued {status.requeues}×  {outcome or ''}".rstrip()
        )
    return "\n".join(lines)


def summary_text(statuses: Sequence[JobStatus]) -> str:
    """'4 jobs: 2 RUNNING, 1 PENDING, 1 COMPLETED'."""
    counts = Counter(status.state for status in statuses)
    parts = ", ".join(f"{count} {state}" for state, count in counts.most_common())
    return f"{plural(len(statuses), 'job')}: {parts}" if statuses else "no jobs"


def _last_line(text: str | None) -> str:
    return text.strip().splitlines()[-1] if text and text.strip() else ""


# -- HTML (each piece is also a child of the live widget) ---------------------------------------

_TABLE_STYLE = "border-collapse:collapse;font-size:12px;line-height:1.4;margin:2px 0"
_CELL_STYLE = "padding:1px 12px 1px 0;text-align:left;vertical-align:top;border:none"
# No scroll boxes: what goes in a <pre> is already bounded (log tail, truncated result/traceback).
_PRE_STYLE = (
    "margin:2px 0;padding:4px 6px;overflow-x:auto;font-size:12px;"
    "line-height:1.35;background:rgba(127,127,127,0.08);white-space:pre-wrap;word-break:break-all"
)


def badge_html(status: JobStatus) -> str:
    """The state as a coloured badge."""
    color = STATE_COLORS.get(status.state, _DEFAULT_COLOR)
    return (
        f'<span class="jsc-state" style="background:{color};color:#fff;border-radius:3px;'
        f'padding:1px 6px;font-weight:bold;font-size:12px">{_e(state_text(status))}</span>'
    )


def header_html(status: JobStatus) -> str:
    """Name, id, backend, state badge, elapsed time and node on one line."""
    problem = (
        f' <span style="color:#c62828">(watcher: {_e(status.problem)})</span>'
        if status.problem
        else ""
    )
    return (
        f"<b>{_e(status.name)}</b> · job <code>{_e(status.job_id)}</code> · {_e(status.backend)}"
        f" &nbsp;{badge_html(status)}&nbsp; elapsed {_e(elapsed_text(status))}"
        f" · node {_e(status.node or '–')}{problem}"
    )


def counters_html(status: JobStatus) -> str:
    """The requeue counters."""
    lines = _e(counters_text(status)).replace("\n", "<br>")
    return f'<span class="jsc-counters">{lines}</span>'


def timeline_html(rows: Sequence[TimelineRow]) -> str:
    """The event timeline as a small table (the most recent rows when it is long)."""
    shown = rows[-TIMELINE_MAX_ROWS:]
    body = "".join(
        f"<tr><td style='{_CELL_STYLE}'>{row.clock}</td>"
        f"<td style='{_CELL_STYLE}'><b>{_e(row.event)}</b></td>"
        f"<td style='{_CELL_STYLE}'>{_e(row.details)}</td></tr>"
        for row in shown
    )
    hidden = len(rows) - len(shown)
    more = f"<tr><td colspan='3'>… {hidden} earlier events</td></tr>" if hidden else ""
    return f"<table class='jsc-timeline' style='{_TABLE_STYLE}'>{more}{body}</table>"


def log_html(text: str, stream: str) -> str:
    """A log tail in a scrollable block."""
    if not text:
        return f"<i style='font-size:12px'>no {_e(stream)} yet</i>"
    return f"<pre class='jsc-log' style='{_PRE_STYLE}'>{_e(text)}</pre>"


def outcome_html(status: JobStatus) -> str:
    """The result's repr, or the remote traceback, once the job has ended."""
    if status.result is not None:
        result = _e(status.result)
        return f"<b>result</b><pre class='jsc-result' style='{_PRE_STYLE}'>{result}</pre>"
    if status.failure is not None:
        return (
            f"<b style='color:#c62828'>error</b>"
            f"<pre class='jsc-failure' style='{_PRE_STYLE}'>{_e(status.failure)}</pre>"
        )
    return ""


def render_html(status: JobStatus) -> str:
    """The whole status as static HTML (what a saved notebook shows without a kernel)."""
    logs = "".join(
        f"<details><summary>{name} (last lines)</summary>{log_html(text, name)}</details>"
        for name, text in (("stdout", status.stdout_tail), ("stderr", status.stderr_tail))
        if text
    )
    return (
        f"<div class='jsc-job'><div>{header_html(status)}</div><div>{counters_html(status)}</div>"
        f"{timeline_html(status.timeline)}{logs}{outcome_html(status)}</div>"
    )


def table_html(statuses: Sequence[JobStatus]) -> str:
    """A job array or list of jobs as one compact table."""
    head = "".join(
        f"<th style='{_CELL_STYLE}'>{name}</th>"
        for name in ("job", "name", "state", "elapsed", "node", "requeues", "outcome")
    )
    rows = []
    for status in statuses:
        outcome = status.result if status.result is not None else _last_line(status.failure)
        cells = (
            f"<code>{_e(status.job_id)}</code>",
            _e(status.name),
            badge_html(status),
            _e(elapsed_text(status)),
            _e(status.node or "–"),
            _e(f"{status.requeues} ({status.preemptions} P, {status.timeouts} T)"),
            _e(truncate(outcome or "", 80)),
        )
        row = "".join(f"<td style='{_CELL_STYLE}'>{cell}</td>" for cell in cells)
        rows.append(f"<tr>{row}</tr>")
    return (
        f"<table class='jsc-table' style='{_TABLE_STYLE}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_table_html(statuses: Sequence[JobStatus]) -> str:
    """Summary line and table, as static HTML."""
    summary = _e(summary_text(statuses))
    return f"<div class='jsc-jobs'><div>{summary}</div>{table_html(statuses)}</div>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


# -- display outside the widget -------------------------------------------------------------------


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can be shown); never imports IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def job_mimebundle(job: Job[Any]) -> dict[str, Any]:
    """``Job._repr_mimebundle_``: the live widget in a kernel, text and HTML elsewhere."""
    if in_kernel():
        try:
            from .widget import widget_for
        except ImportError:  # ipywidgets is not installed: the static rendering still works
            pass
        else:
            return widget_for(job)._repr_mimebundle_()
    status = collect_status(job)
    return {"text/plain": render_text(status), "text/html": render_html(status)}
