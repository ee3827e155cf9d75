"""A job's status as HTML: each piece is also a child of the live widget, and
:func:`render_html` is what a saved notebook shows without a kernel.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from .status import JobStatus, job_labels
from .text import (
    counters_text,
    elapsed_text,
    last_line,
    progress_brief,
    progress_text,
    state_text,
    summary_text,
)
from .timeline import TIMELINE_MAX_ROWS, TimelineRow
from .words import truncate

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

_TABLE_STYLE = "border-collapse:collapse;font-size:12px;line-height:1.4;margin:2px 0"

_CELL_STYLE = "padding:1px 12px 1px 0;text-align:left;vertical-align:top;border:none"

# No scroll boxes: what goes in a <pre> is already bounded (log tail, truncated result/traceback).
_PRE_STYLE = (
    "margin:2px 0;padding:4px 6px;overflow-x:auto;font-size:12px;"
    "line-height:1.35;background:rgba(127,127,127,0.08);white-space:pre-wrap;word-break:break-all"
)


def escape(text: str) -> str:
    """``text`` safe inside HTML, quotes included (every view escapes through this)."""
    return html.escape(text, quote=True)


def badge_html(status: JobStatus) -> str:
    """The state as a coloured badge."""
    color = STATE_COLORS.get(status.state, _DEFAULT_COLOR)
    return (
        f'<span class="jsc-state" style="background:{color};color:#fff;border-radius:3px;'
        f'padding:1px 6px;font-weight:bold;font-size:12px">{escape(state_text(status))}</span>'
    )


def header_html(status: JobStatus) -> str:
    """Name, id, backend, state badge, elapsed time and node on one line."""
    problem = (
        f' <span style="color:#c62828">(watcher: {escape(status.problem)})</span>'
        if status.problem
        else ""
    )
    return (
        f"<b>{escape(status.name)}</b> · job <code>{escape(status.job_id)}</code>"
        f" · {escape(status.backend)}"
        f" &nbsp;{badge_html(status)}&nbsp; elapsed {escape(elapsed_text(status))}"
        f" · node {escape(status.node or '–')}{problem}"
    )


def counters_html(status: JobStatus) -> str:
    """The requeue counters."""
    lines = escape(counters_text(status)).replace("\n", "<br>")
    return f'<span class="jsc-counters">{lines}</span>'


def timeline_html(rows: Sequence[TimelineRow]) -> str:
    """The event timeline as a small table (the most recent rows when it is long)."""
    shown = rows[-TIMELINE_MAX_ROWS:]
    body = "".join(
        f"<tr><td style='{_CELL_STYLE}'>{row.clock}</td>"
        f"<td style='{_CELL_STYLE}'><b>{escape(row.event)}</b></td>"
        f"<td style='{_CELL_STYLE}'>{escape(row.details)}</td></tr>"
        for row in shown
    )
    hidden = len(rows) - len(shown)
    more = f"<tr><td colspan='3'>… {hidden} earlier events</td></tr>" if hidden else ""
    return f"<table class='jsc-timeline' style='{_TABLE_STYLE}'>{more}{body}</table>"


def log_html(status: JobStatus, stream: str) -> str:
    """The tail of ``stream`` ("stdout" or "stderr") as a terminal shows it, colours included."""
    rendered = status.stdout_html if stream == "stdout" else status.stderr_html
    if not rendered:
        return f"<i style='font-size:12px'>no {escape(stream)} yet</i>"
    return f"<pre class='jsc-log' style='{_PRE_STYLE}'>{rendered}</pre>"


def progress_bar_html(status: JobStatus, width: str = "240px") -> str:
    """The progress as a bar (only when the total is known), in the state's colour."""
    progress = status.progress
    if progress is None or progress.fraction is None:
        return ""
    color = STATE_COLORS.get(status.state, _DEFAULT_COLOR)
    return (
        f"<span class='jsc-progress-bar' style='display:inline-block;width:{width};height:10px;"
        f"background:rgba(127,127,127,0.2);border-radius:3px;overflow:hidden;"
        f"vertical-align:middle'><span style='display:block;height:100%;"
        f"width:{progress.fraction * 100:.1f}%;background:{color}'></span></span>"
    )


def progress_html(status: JobStatus) -> str:
    """Bar and words ('120/200 (60%) · 3.2/s · 25 s left'), or "" when nothing reports."""
    if status.progress is None:
        return ""
    return (
        f"<div class='jsc-progress' style='font-size:12px'>{progress_bar_html(status)} "
        f"<span class='jsc-progress-text'>{escape(progress_text(status))}</span></div>"
    )


def outcome_html(status: JobStatus) -> str:
    """The result's repr, or the remote traceback, once the job has ended."""
    if status.result is not None:
        result = escape(status.result)
        return f"<b>result</b><pre class='jsc-result' style='{_PRE_STYLE}'>{result}</pre>"
    if status.failure is not None:
        return (
            f"<b style='color:#c62828'>error</b>"
            f"<pre class='jsc-failure' style='{_PRE_STYLE}'>{escape(status.failure)}</pre>"
        )
    return ""


def render_html(status: JobStatus) -> str:
    """The whole status as static HTML (what a saved notebook shows without a kernel)."""
    logs = "".join(
        f"<details><summary>{name} (last lines)</summary>{log_html(status, name)}</details>"
        for name, text in (("stdout", status.stdout_tail), ("stderr", status.stderr_tail))
        if text
    )
    return (
        f"<div class='jsc-job'><div>{header_html(status)}</div><div>{counters_html(status)}</div>"
        f"{progress_html(status)}{timeline_html(status.timeline)}{logs}{outcome_html(status)}"
        "</div>"
    )


def table_html(statuses: Sequence[JobStatus], labels: Sequence[str] | None = None) -> str:
    """A job array or list of jobs as one compact table (``labels``: the rows' names, by
    default :func:`~.status.job_labels`)."""
    with_progress = any(status.progress is not None for status in statuses)
    names = ("job", "name", "state", "elapsed", "progress", "node", "requeues", "outcome")
    head = "".join(
        f"<th style='{_CELL_STYLE}'>{name}</th>"
        for name in names
        if with_progress or name != "progress"
    )
    rows = []
    for label, status in zip(labels or job_labels(statuses), statuses):
        outcome = status.result if status.result is not None else last_line(status.failure)
        progress = (
            [f"{progress_bar_html(status, '80px')} {escape(progress_brief(status))}"]
            if with_progress
            else []
        )
        cells = (
            f"<code>{escape(label)}</code>",
            escape(status.name),
            badge_html(status),
            escape(elapsed_text(status)),
            *progress,
            escape(status.node or "–"),
            escape(f"{status.requeues} ({status.preemptions} P, {status.timeouts} T)"),
            escape(truncate(outcome or "", 80)),
        )
        row = "".join(f"<td style='{_CELL_STYLE}'>{cell}</td>" for cell in cells)
        rows.append(f"<tr>{row}</tr>")
    return (
        # A narrow notebook scrolls the table sideways rather than cutting its last columns.
        f"<div style='overflow-x:auto'><table class='jsc-table' style='{_TABLE_STYLE}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_table_html(statuses: Sequence[JobStatus]) -> str:
    """Summary line and table, as static HTML."""
    summary = escape(summary_text(statuses))
    return f"<div class='jsc-jobs'><div>{summary}</div>{table_html(statuses)}</div>"
