"""A job's status at one moment, as plain data: the one snapshot every view shows.

:func:`collect_status` reads a job into a :class:`JobStatus` from its folder (events, logs, result)
and, while it lives, its backend. The live widget, ``%slurm_jobs``, a terminal's text and the
sidebar's REST rows all show such a snapshot (renderings: ``text`` and ``html``). A
:attr:`~jupyter_slurm_ckpt.Job.read_only` job (the Jupyter server's) is read without unpickling
anything and without following a log that is a symbolic link. Log tails are read as a terminal
shows them (``terminal``); progress comes from the job's ``report_progress`` events or, failing
those, from the last tqdm bar of its log (``core.progress``). Imports neither IPython nor
ipywidgets.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.budget import check_budget
from ..core.catalog import file_signature
from ..core.errors import FailedJobError, UncompletedJobError
from ..core.events import TERMINAL_EVENTS, EventSummary, resubmitted_as, summarize
from ..core.job import FINAL_STATES, Job
from ..core.paths import JobPaths
from ..core.payload import format_size
from ..core.progress import Progress, progress_from_events, progress_from_log
from .terminal import DEFAULT_MAX_BYTES, Screen, read_tail
from .timeline import TimelineRow, timeline_rows
from .words import plural, truncate

#: A compact view (table, sidebar) reads this much of a log's end to find a tqdm bar.
PROGRESS_TAIL_BYTES = 4_096
RESULT_MAX_CHARS = 2_000
FAILURE_MAX_CHARS = 4_000
#: Results bigger than this are not unpickled just to show their repr.
RESULT_MAX_LOAD_BYTES = 50 * 1024 * 1024


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


@dataclass(frozen=True)
class JobStatus:
    """Everything a view shows about one job at one moment.

    ``elapsed_s`` (since the first start, or queued since the submission), ``run_elapsed_s``
    (since the current run started) and ``last_event`` are left out of comparisons: two
    snapshots are equal when nothing but the clock moved, which is what the watcher's back-off
    needs. The log tails are kept as plain text (``*_tail``) and as HTML with their colours
    (``*_html``).
    """

    job_id: str
    name: str
    backend: str
    state: str
    done: bool = False
    #: The job's folder: with ``job_id``, what names the job (ids repeat across folders).
    folder: str = ""
    pending_reason: str | None = None
    node: str | None = None
    started: bool = False
    runs: int = 0
    requeues: int = 0
    preemptions: int = 0
    timeouts: int = 0
    max_num_timeout: int = 3
    num_tasks: int = 1
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
    submitted_at: float | None = None
    times: JobTimes = JobTimes()
    #: The job this one was resubmitted as (``job.resubmit()``), if it was.
    resubmitted_as: str | None = None
    last_event: dict[str, Any] | None = field(default=None, compare=False)
    elapsed_s: float | None = field(default=None, compare=False)
    run_elapsed_s: float | None = field(default=None, compare=False)


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
        The job to read. A ``read_only`` job is read without unpickling its result (the
        events tell how it ended) and without following a symbolically linked log.
    state
        The job's state when already known (from a batched scheduler poll); else ``job.state``.
    details
        Also read the event timeline and the log tails (a compact table does not need them).
    previous
        The last snapshot of the same job: a finished job's result is not loaded twice.
    now
        The clock used for the elapsed times (default: ``time.time()``).
    """
    info = job.info
    state = job.state if state is None else state
    events = job.events()
    summary = summarize(events)
    state = summary.agree(state)  # the events may have moved on since the state was read
    done = state in FINAL_STATES
    stdout, stderr, progress = _logs_and_progress(job, events, details)
    result, failure = _ended(job, previous, state, summary) if done else (None, None)
    return JobStatus(
        job_id=job.job_id,
        folder=str(job.paths.folder),
        name=info.name,
        backend=info.cluster,
        state=state,
        done=done,
        pending_reason=job.pending_reason if state == "PENDING" else None,
        max_num_timeout=info.max_num_timeout,
        num_tasks=info.num_tasks,
        budget_warnings=tuple(warning.message for warning in check_budget(events, info)),
        timeline=tuple(timeline_rows(events, info.num_tasks)) if details else (),
        stdout_tail=stdout.text,
        stderr_tail=stderr.text,
        stdout_html=stdout.html,
        stderr_html=stderr.html,
        progress=progress,
        result=result,
        failure=failure,
        problem=_damage(job),
        scheduler_problem=job.scheduler_problem if not done else None,
        resubmitted_as=resubmitted_as(events),
        **_counters(summary),
        **_clock(events, summary.submitted_at or info.submitted_at, done, now),
    )


def job_labels(statuses: Sequence[JobStatus]) -> list[str]:
    """How views name these jobs side by side (see :func:`labels_of`)."""
    return labels_of([(status.folder, status.job_id) for status in statuses])


def labels_of(jobs: Sequence[tuple[str | Path, str]]) -> list[str]:
    """How views name jobs (folder, id) side by side: the id, and where ids repeat (one
    ``L1`` per folder) the folder's name before it (``k1/L1``), or its whole path if names
    repeat too."""
    ids = Counter(job_id for _, job_id in jobs)
    short = [
        f"{Path(folder).name}/{job_id}" if ids[job_id] > 1 else job_id for folder, job_id in jobs
    ]
    repeated = Counter(short)
    return [
        label if repeated[label] == 1 else f"{folder}/{job_id}"
        for label, (folder, job_id) in zip(short, jobs)
    ]


def _counters(summary: EventSummary) -> dict[str, Any]:
    """What the events count, and the last one."""
    return {
        "node": summary.node,
        "started": summary.started_at is not None,
        "runs": summary.runs,
        "requeues": summary.requeues,
        "preemptions": summary.preemptions,
        "timeouts": summary.timeouts,
        "not_requeued_reason": summary.not_requeued_reason,
        "terminal_seen": summary.terminal is not None,
        "last_event": summary.last,
    }


def _clock(
    events: Sequence[dict[str, Any]], submitted_at: float, done: bool, now: float | None
) -> dict[str, Any]:
    """The job's times, and how long it has run (or waited in the queue) as of ``now``."""
    times = job_times(events, done)
    clock = _elapsed(times, submitted_at, done, now)
    return {"times": times, "submitted_at": submitted_at, **clock}


def _elapsed(
    times: JobTimes, submitted_at: float | None, done: bool, now: float | None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    elapsed, run_elapsed = times.elapsed(now)
    if elapsed is None and not done and submitted_at is not None:  # queued: how long so far
        elapsed = now - submitted_at
    return {"elapsed_s": elapsed, "run_elapsed_s": run_elapsed}


def with_clock(status: JobStatus, now: float | None = None) -> JobStatus:
    """The same snapshot with its elapsed times as of ``now`` (what moves when nothing else
    does)."""
    return replace(status, **_elapsed(status.times, status.submitted_at, status.done, now))


def snapshot_inputs(job: Job[Any], state: str) -> tuple[Any, ...] | None:
    """What :func:`collect_status` makes a snapshot of, told cheaply (a ``stat`` of the events
    file and of the logs): two snapshots of the same inputs differ only by the clock
    (:func:`with_clock`). None where the scheduler may say more without a file changing (a
    PENDING job's reason)."""
    if state == "PENDING":
        return None
    paths = job.paths
    return (
        state,
        job.scheduler_problem,
        *(file_signature(path) for path in (paths.events, paths.stdout, paths.stderr)),
    )


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


def log_progress(paths: JobPaths, follow_links: bool = True) -> Progress | None:
    """The last tqdm bar in the ends of a job's stderr and stdout (a few kB of each)."""
    stderr, stdout = (
        _read_log(path, follow_links, PROGRESS_TAIL_BYTES) for path in (paths.stderr, paths.stdout)
    )
    return progress_from_log(stderr.text, stdout.text)


def _read_log(path: Path, follow_links: bool, max_bytes: int = DEFAULT_MAX_BYTES) -> Screen:
    """A log's end as a terminal shows it; nothing for a symbolic link unless it is followed."""
    if not follow_links and path.is_symlink():
        return Screen()
    return read_tail(path, max_bytes=max_bytes)


def _logs_and_progress(
    job: Job[Any], events: list[dict[str, Any]], details: bool
) -> tuple[Screen, Screen, Progress | None]:
    """The log tails (with ``details``) and the progress: the job's reports, or else the
    zero-effort path, its own tqdm bar."""
    follow = not job.read_only
    stdout, stderr = (
        _read_log(path, follow) if details else Screen()
        for path in (job.paths.stdout, job.paths.stderr)
    )
    progress = progress_from_events(events)
    if progress is None and details:
        progress = progress_from_log(stderr.text, stdout.text)
    elif progress is None:
        progress = log_progress(job.paths, follow_links=follow)
    return stdout, stderr, progress


def _ended(
    job: Job[Any], previous: JobStatus | None, state: str, summary: EventSummary
) -> tuple[str | None, str | None]:
    """The outcome of an ended job, reused from ``previous`` once the folder recorded the end
    (a result file may show up on a shared filesystem a little after the scheduler says
    COMPLETED)."""
    if previous is not None and previous.done and previous.terminal_seen:
        return previous.result, previous.failure
    return _outcome(job, state, summary)


def _outcome(job: Job[Any], state: str, summary: EventSummary) -> tuple[str | None, str | None]:
    """(result repr, None) for a success, (None, traceback or reason) otherwise: what the
    folder holds now (a view reads, it never waits for a result to come).

    A :attr:`~Job.read_only` job (the server's) is never unpickled: its events tell, as the
    snapshot read them (``state``, ``summary``: not asked again).
    """
    if job.read_only:
        return _recorded_outcome(state, summary)
    for task in range(job.num_tasks):
        size = job.result_bytes(task) or 0
        if size > RESULT_MAX_LOAD_BYTES:
            return f"<result of {format_size(size)}: call job.result() to load it>", None
    try:
        values = job.results_in_folder()
    except (FailedJobError, UncompletedJobError) as error:
        return None, truncate(str(error), FAILURE_MAX_CHARS, keep="end")
    shown: Any = values[0] if len(values) == 1 else values
    try:
        text = repr(shown)
    except Exception as error:  # a user __repr__ may fail: say so instead of failing the view
        text = f"<repr() of {type(shown).__name__} failed: {error!r}>"
    return truncate(text, RESULT_MAX_CHARS), None


def _recorded_outcome(state: str, summary: EventSummary) -> tuple[str | None, str | None]:
    """The outcome as the events tell it (nothing unpickled)."""
    terminal = summary.terminal
    if terminal is not None and terminal["event"] == "completed":
        return "<not loaded here: call job.result() to load it>", None
    reason = (terminal or {}).get("reason") or summary.not_requeued_reason
    return None, f"{state}: {reason or 'no reason recorded'}"


def _damage(job: Job[Any]) -> str | None:
    """Lines of the events file that were skipped (the view shows what the others say)."""
    damaged = job.unreadable_event_lines
    return f"{plural(damaged, 'damaged line')} skipped in {job.paths.events}" if damaged else None

