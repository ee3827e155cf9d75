"""A job's status as plain data, and its text and HTML renderings.

One snapshot (:class:`JobStatus`) feeds every view: the live widget builds its children from the
same HTML pieces, a plain IPython terminal gets :func:`render_text`, and :func:`render_html` is the
fallback a saved notebook shows without a kernel. Log tails are rendered as a terminal shows them
(``terminal``); progress comes from the job's ``report_progress`` events or, failing those, from
the last tqdm bar of its log (``core.progress``). Imports neither IPython nor ipywidgets.
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
from .core.events import TERMINAL_EVENTS, summarize
from .core.job import FINAL_STATES, Job
from .core.paths import JobPaths
from .core.progress import Progress, progress_from_events, progress_from_log, step_reports
from .terminal import Screen, read_tail

LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 16_384
#: A compact view (table, sidebar) reads this much of a log's end to find a tqdm bar.
PROGRESS_TAIL_BYTES = 4_096
#: A running job whose last progress report is this old shows its age instead of a time left.
STALE_REPORT_S = 30.0
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

    ``elapsed_s`` (since the first start, or queued since the submission) and ``run_elapsed_s``
    (since the current run started) are left out of comparisons: two snapshots are equal when
    nothing but the clock moved, which is what the watcher's back-off needs. The log tails are
    kept as plain text (``*_tail``) and as HTML with their colours (``*_html``).
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
    stdout_html: str = ""
    stderr_html: str = ""
    progress: Progress | None = None
    result: str | None = None
    failure: str | None = None
    problem: str | None = None
    scheduler_problem: str | None = None
    elapsed_s: float | None = field(default=None, compare=False)
    run_elapsed_s: float | None = field(default=None, compare=False)


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
        The clock used for the elapsed times (default: ``time.time()``).
    """
    now = time.time() if now is None else now
    info = job.info
    state = job.state if state is None else state
    events = job.events()
    summary = summarize(events)
    state = summary.agree(state)  # the events may have moved on since the state was read
    done = state in FINAL_STATES
    times = job_times(events, done)
    elapsed, run_elapsed = times.elapsed(now)
    if elapsed is None and not done:  # still queued: show how long it has waited
        elapsed = now - (summary.submitted_at or info.submitted_at)
    stdout = read_tail(job.paths.stdout) if details else Screen()
    stderr = read_tail(job.paths.stderr) if details else Screen()
    progress = progress_from_events(events)
    if progress is None:  # the zero-effort path: the job's own tqdm bar, if it has one
        progress = (
            progress_from_log(stderr.text, stdout.text) if details else log_progress(job.paths)
        )
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
        stdout_tail=stdout.text,
        stderr_tail=stderr.text,
        stdout_html=stdout.html,
        stderr_html=stderr.html,
        progress=progress,
        result=result,
        failure=failure,
        problem=problem,
        scheduler_problem=job.scheduler_problem if not done else None,
        elapsed_s=elapsed,
        run_elapsed_s=run_elapsed,
    )


@dataclass(frozen=True)
class JobTimes:
    """When the job first started, when its current (or last) run started and ended, and when
    the job ended; None for what has not happened."""

    started_at: float | None = None
    run_started_at: float | None = None
    run_ended_at: float | None = None
    ended_at: float | None = None

    def elapsed(self, now: float) -> tuple[float | None, float | None]:
        """(since the first start, since the current run started), as of ``now``."""
        if self.started_at is None:
            return None, None
        job = (self.ended_at or now) - self.started_at
        run = None
        if self.run_started_at is not None:
            run = (self.run_ended_at or self.ended_at or now) - self.run_started_at
        return max(job, 0.0), None if run is None else max(run, 0.0)


def job_times(events: Sequence[dict[str, Any]], done: bool) -> JobTimes:
    """The job's start and end times from its events.

    A job ends with its last terminal event, only once its state is final (``done``): in a job
    of several tasks, one task may finish long before the others. A run ends with its requeue,
    or with the job.
    """
    started_at = run_started_at = run_ended_at = ended_at = None
    for record in events:
        name = record.get("event")
        t = float(record.get("t", 0.0))
        if name == "started":
            started_at = t if started_at is None else started_at
            run_started_at, run_ended_at = t, None
        elif name == "requeued" and run_started_at is not None:
            run_ended_at = run_ended_at or t
        elif name in TERMINAL_EVENTS and done:
            ended_at = t
    if done and ended_at is None and events:  # ended without a word (killed): its last event
        ended_at = float(events[-1].get("t", 0.0))
    if done and started_at is not None and ended_at is not None:
        ended_at = max(ended_at, started_at)
    return JobTimes(started_at, run_started_at, run_ended_at, ended_at)


def log_progress(paths: JobPaths) -> Progress | None:
    """The last tqdm bar in the ends of a job's stderr and stdout (a few kB of each)."""
    return progress_from_log(
        read_tail(paths.stderr, max_bytes=PROGRESS_TAIL_BYTES).text,
        read_tail(paths.stdout, max_bytes=PROGRESS_TAIL_BYTES).text,
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
    """The last ``lines`` lines of a log as a terminal shows them, as plain text (read from its
    end only: ``terminal.read_tail``), or "" if none."""
    return read_tail(path, lines, max_bytes).text


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


def format_count(value: float) -> str:
    """A step count: 1,200 for whole numbers, 3.25 otherwise."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


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
            parts.append(f"payload {format_bytes(int(record['bytes']))}")
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


#: What Slurm's most common pending reasons mean for the user (``squeue``'s words are terse).
PENDING_REASONS = {
    "BadConstraints": "no node can ever run this job as asked (more GPUs, CPUs or memory than "
    "any node of the partition has): cancel it and ask for less",
    "Resources": "waiting for nodes, GPUs or memory to free up",
    "Priority": "other jobs come first",
    "BeginTime": "not before its begin time (a requeued job waits a few seconds)",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved",
    "PartitionDown": "its partition is down",
    "JobHeldUser": "held (scontrol release starts it)",
    "JobHeldAdmin": "held by an administrator",
    "Dependency": "waiting for the jobs it depends on",
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


def format_duration(seconds: float) -> str:
    """A short human duration: 0.4 s, 12 s, 3 min 04 s, 2 h 05 min, 1 d 03 h."""
    if seconds < 10:  # a short job's time to the tenth: "0.4 s", not "0 s"
        return f"{max(0.0, int(seconds * 10) / 10):.1f} s"
    whole = int(seconds)
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


def format_rate(rate: float) -> str:
    """'12.5/s', or '4.2 s each' when a step takes longer than a second."""
    if rate >= 1 or rate <= 0:
        return f"{rate:.3g}/s"
    return f"{1 / rate:.3g} s each"


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


# -- text -----------------------------------------------------------------------------------------


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


def render_table_text(statuses: Sequence[JobStatus]) -> str:
    """A job array or list of jobs as a text table."""
    lines = [summary_text(statuses)]
    with_progress = any(status.progress is not None for status in statuses)
    for status in statuses:
        outcome = status.result if status.result is not None else _last_line(status.failure)
        progress = f"{progress_brief(status):<18} " if with_progress else ""
        lines.append(
            f"  {status.job_id:<10} {state_text(status):<12} {elapsed_text(status):<14} "
            f"{progress}requeued {status.requeues}×  {outcome or ''}".rstrip()
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


def log_html(status: JobStatus, stream: str) -> str:
    """The tail of ``stream`` ("stdout" or "stderr") as a terminal shows it, colours included."""
    rendered = status.stdout_html if stream == "stdout" else status.stderr_html
    if not rendered:
        return f"<i style='font-size:12px'>no {_e(stream)} yet</i>"
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
        f"<span class='jsc-progress-text'>{_e(progress_text(status))}</span></div>"
    )


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
        f"<details><summary>{name} (last lines)</summary>{log_html(status, name)}</details>"
        for name, text in (("stdout", status.stdout_tail), ("stderr", status.stderr_tail))
        if text
    )
    return (
        f"<div class='jsc-job'><div>{header_html(status)}</div><div>{counters_html(status)}</div>"
        f"{progress_html(status)}{timeline_html(status.timeline)}{logs}{outcome_html(status)}"
        "</div>"
    )


def table_html(statuses: Sequence[JobStatus]) -> str:
    """A job array or list of jobs as one compact table."""
    with_progress = any(status.progress is not None for status in statuses)
    names = ("job", "name", "state", "elapsed", "progress", "node", "requeues", "outcome")
    head = "".join(
        f"<th style='{_CELL_STYLE}'>{name}</th>"
        for name in names
        if with_progress or name != "progress"
    )
    rows = []
    for status in statuses:
        outcome = status.result if status.result is not None else _last_line(status.failure)
        progress = (
            [f"{progress_bar_html(status, '80px')} {_e(progress_brief(status))}"]
            if with_progress
            else []
        )
        cells = (
            f"<code>{_e(status.job_id)}</code>",
            _e(status.name),
            badge_html(status),
            _e(elapsed_text(status)),
            *progress,
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
