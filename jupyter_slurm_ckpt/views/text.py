"""A job's status as text: the words every view shows, and the whole status for a terminal."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from ..core.progress import Progress
from .status import JobStatus, job_labels
from .timeline import TIMELINE_MAX_ROWS
from .words import format_count, format_duration, format_rate, plural

#: A running job whose last progress report is this old shows its age instead of a time left.
STALE_REPORT_S = 30.0


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


#: What Slurm's most common pending reasons mean for the user (``squeue``'s words are terse).
PENDING_REASONS = {
    "BadConstraints": "no node can ever run this job as asked (more GPUs, CPUs or memory than "
    "any node of the partition has): cancel it and ask for less",
    "Resources": "waiting for nodes, GPUs or memory to free up",
    "Priority": "other jobs come first",
    "BeginTime": "not before its begin time (a requeued job waits a few seconds)",
    "PartitionConfig": "its partition cannot give what it asks for now (CPUs, memory, GPUs, "
    "nodes or time: nodes down, reserved or smaller than asked): it starts once the partition "
    "can, or cancel it and ask for less (sinfo -N -l shows what the nodes have)",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved: it starts when the node "
    "is back (sinfo -R says why it is out), or cancel it and ask for other nodes",
    "PartitionDown": "its partition is down: it starts when the partition is up again",
    "JobHeldUser": "held (scontrol release starts it)",
    "JobHeldAdmin": "held by an administrator",
    "Dependency": "waiting for the jobs it depends on",
    "JobArrayTaskLimit": "its array runs at most array_parallelism elements at a time",
    # The local backend's queue (backends/local/slots.py).
    "LocalSlot": "waiting for a local slot: this machine runs as many of your local jobs at "
    "once as its CPUs and memory hold (the slots parameter, SlurmMagics.local_slots)",
    "LocalMemory": "waiting for free memory on this machine",
}


def state_text(status: JobStatus) -> str:
    """The state, with Slurm's pending reason (and what it means) when there is one."""
    reason = status.pending_reason
    if reason:
        meaning = PENDING_REASONS.get(reason)
        return f"{status.state} ({reason}: {meaning})" if meaning else f"{status.state} ({reason})"
    return status.state


def elapsed_text(status: JobStatus) -> str:
    """'12 s' while running or after the end, since the first start; with the current run's
    own time once the job was requeued ('3 min 04 s (run #1: 12 s)'); 'queued 12 s' before
    the first start."""
    if status.elapsed_s is None:
        return "–"
    duration = format_duration(status.elapsed_s)
    if not status.started:
        return f"queued {duration}"
    if status.runs > 1 and status.run_elapsed_s is not None:
        duration += f" (run #{status.runs - 1}: {format_duration(status.run_elapsed_s)})"
    return duration


def time_left_text(status: JobStatus, now: float | None = None) -> str:
    """'25 s left' (counted down since the last report) while the job runs, 'last report
    2 min 10 s ago' once its reports stopped for a while, "" when there is nothing to say."""
    progress = status.progress
    if progress is None or status.done:
        return ""
    if progress.at is not None:
        since = max((time.time() if now is None else now) - progress.at, 0.0)
        if since >= STALE_REPORT_S:
            return f"last report {format_duration(since)} ago"
    else:  # a tqdm bar read from a log: tqdm's own estimate
        since = 0.0
    if progress.eta_s is None or (progress.fraction or 0.0) >= 1:
        return ""
    return f"{format_duration(max(progress.eta_s - since, 0.0))} left"


def progress_text(status: JobStatus, now: float | None = None) -> str:
    """'train 120/200 (60%) · 3.2/s · 25 s left · resumed at 100 in run #1 · loss=0.3'."""
    progress = status.progress
    if progress is None:
        return ""
    count = format_count(progress.step)
    if progress.total is not None:
        count += f"/{format_count(progress.total)} ({progress.fraction or 0.0:.0%})"
    parts = [f"{progress.desc} {count}" if progress.desc else count]
    if progress.rate is not None:
        parts.append(format_rate(progress.rate))
    left = time_left_text(status, now)
    if left:
        parts.append(left)
    if progress.resumed_from is not None:
        parts.append(f"resumed at {format_count(progress.resumed_from)} in run #{progress.run}")
    if progress.details:
        parts.append(progress.details)
    return " · ".join(parts)


def progress_brief(status: JobStatus) -> str:
    """The progress in a table cell: '60% · 25 s left', a bare step count without a total."""
    progress = status.progress
    if progress is None:
        return ""
    words = format_count(progress.step) if progress.fraction is None else f"{progress.fraction:.0%}"
    left = time_left_text(status)
    return f"{words} · {left}" if left else words


def progress_bar_text(progress: Progress, width: int = 20) -> str:
    """'[████████░░░░░░░░░░░░] ' for a known total, '' otherwise."""
    if progress.fraction is None:
        return ""
    filled = round(progress.fraction * width)
    return f"[{'█' * filled}{'░' * (width - filled)}] "


def headline(status: JobStatus) -> str:
    """'train · job L12 · local · RUNNING'."""
    return f"{status.name} · job {status.job_id} · {status.backend} · {state_text(status)}"


def render_text(status: JobStatus) -> str:
    """The status for a terminal: headline, counters, timeline, result or failure."""
    lines = [headline(status)]
    lines.append(f"  elapsed {elapsed_text(status)} · node {status.node or '–'}")
    lines.append(f"  {counters_text(status)}")
    if status.progress is not None:
        bar = progress_bar_text(status.progress)
        lines.append(f"  progress {bar}{progress_text(status)}")
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


def render_table_text(
    statuses: Sequence[JobStatus], labels: Sequence[str] | None = None, summary: str | None = None
) -> str:
    """A job array or list of jobs as a text table (``labels``: the rows' names, by default
    :func:`job_labels`; ``summary``: the first line, by default :func:`summary_text`)."""
    lines = [summary_text(statuses) if summary is None else summary]
    with_progress = any(status.progress is not None for status in statuses)
    for label, status in zip(labels or job_labels(statuses), statuses):
        outcome = status.result if status.result is not None else last_line(status.failure)
        progress = f"{progress_brief(status):<18} " if with_progress else ""
        lines.append(
            f"  {label:<10} {state_text(status):<12} {elapsed_text(status):<14} "
            f"{progress}requeued {status.requeues}×  {outcome or ''}".rstrip()
        )
    return "\n".join(lines)


def summary_text(statuses: Sequence[JobStatus]) -> str:
    """'4 jobs: 2 RUNNING, 1 PENDING, 1 COMPLETED'."""
    return counts_text(Counter(status.state for status in statuses))


def counts_text(counts: Counter[str]) -> str:
    """'10,000 jobs: 7,514 COMPLETED, 1,485 FAILED' from the number of jobs in each state."""
    total = sum(counts.values())
    parts = ", ".join(f"{count:,} {state}" for state, count in counts.most_common())
    return f"{total:,} {'job' if total == 1 else 'jobs'}: {parts}" if total else "no jobs"


def last_line(text: str | None) -> str:
    """The last line of a traceback or message ("" for none)."""
    return text.strip().splitlines()[-1] if text and text.strip() else ""
