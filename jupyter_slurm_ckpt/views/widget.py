"""The live job widget: stock ipywidgets composed, state in traits, fed by the shared watcher.

:func:`display_job` shows a :class:`JobWidget` for one job, or one :class:`JobTableWidget` for a
job array or list of jobs. The watcher thread calls the widgets' update methods, which only set
traits (ipykernel >= 6 sends trait changes made from any thread), so the view keeps moving while
other cells run. Button actions run in a short-lived thread so the kernel's comm handling is free
again at once; a failing action shows its error in the widget. After each executed cell the main
thread re-reads the jobs whose folder shows their end, so a saved notebook (nbclient, papermill)
never keeps a RUNNING that ``result()`` already disproved.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
from IPython.display import DisplayHandle, display
from traitlets import Bool, Dict, Int, List, Unicode

from ..core.job import Job
from .actions import ActionBar
from .html import (
    counters_html,
    escape,
    header_html,
    log_html,
    outcome_html,
    render_html,
    render_table_html,
    table_html,
    timeline_html,
)
from .saved_outputs import saved_outputs
from .status import JobStatus, collect_status, job_labels
from .text import (
    counters_text,
    elapsed_text,
    progress_text,
    render_table_text,
    render_text,
    summary_text,
)
from .watcher import Subscription, Watcher, get_watcher


class LiveView(widgets.VBox):
    """What both views share: a watcher subscription that ends when the widget is closed, and
    a re-read of the jobs that have ended (see :meth:`sync_ended`)."""

    _subscription: Subscription | None = None  # also set when __init__ failed half-way
    _details = True

    @property
    def jobs_shown(self) -> list[Job[Any]]:
        """The jobs of the view, in the order of :meth:`statuses`."""
        raise NotImplementedError

    def statuses(self) -> list[JobStatus]:
        """The last status of every job shown."""
        raise NotImplementedError

    def update(self, statuses: Sequence[JobStatus]) -> None:
        """Show new statuses."""
        raise NotImplementedError

    def sync_ended(self) -> None:
        """Re-read now the jobs whose folder shows their end (a result, or an end event).

        Runs in the main thread after each cell: the watcher may not have polled since
        ``result()`` returned. The folder alone proves such a state: no scheduler call.
        """
        old = self.statuses()
        new = [
            collect_status(job, details=self._details, previous=status)
            if not (status.done and status.terminal_seen) and _ended_in_folder(job)
            else status
            for job, status in zip(self.jobs_shown, old)
        ]
        if new != old:
            self.update(new)

    def close(self) -> None:
        """Stop watching and close the widget with all its children."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        _close_children(self)
        super().close()


def _ended_in_folder(job: Job[Any]) -> bool:
    """Whether the job folder records the job's end: every task's result, or an end event."""
    paths = job.paths
    if all(paths.for_task(task).result_pickle.exists() for task in range(job.num_tasks)):
        return True
    return job.summary().terminal is not None


def _newer(old: JobStatus, new: JobStatus) -> JobStatus:
    """``new``, unless ``old`` already showed the job's recorded end (a watcher tick read
    before the main thread's re-read must not bring back RUNNING)."""
    if old.done and old.terminal_seen and not (new.done and new.terminal_seen):
        return old
    return new


def _close_children(box: widgets.Box) -> None:
    for child in box.children:
        if isinstance(child, widgets.Box):
            _close_children(child)
        child.close()


class JobWidget(LiveView):
    """The live view of one job: header, counters, buttons, timeline, log tail, outcome.

    Parameters
    ----------
    job
        The job to show.
    watcher
        The poller feeding the widget (default: the process's shared one).
    """

    job_id = Unicode("").tag(sync=True)
    #: The job's folder: with ``job_id``, what names the job (ids repeat across folders).
    job_folder = Unicode("").tag(sync=True)
    job_name = Unicode("").tag(sync=True)
    job_backend = Unicode("").tag(sync=True)
    job_state = Unicode("").tag(sync=True)
    pending_reason = Unicode("").tag(sync=True)
    job_node = Unicode("").tag(sync=True)
    elapsed = Unicode("").tag(sync=True)
    requeues = Int(0).tag(sync=True)
    preemptions = Int(0).tag(sync=True)
    timeouts = Int(0).tag(sync=True)
    counters = Unicode("").tag(sync=True)
    job_done = Bool(False).tag(sync=True)
    timeline = List(Dict()).tag(sync=True)
    #: ``Progress.as_dict()`` of the job's progress ({} when it reports none).
    progress = Dict().tag(sync=True)
    result = Unicode("").tag(sync=True)
    failure = Unicode("").tag(sync=True)

    def __init__(self, job: Job[Any], watcher: Watcher | None = None, **kwargs: Any) -> None:
        self.job = job
        self._lock = threading.RLock()
        self._status = collect_status(job)
        self._shown = False  # the first update shows everything
        self._watcher = watcher or get_watcher()
        self._header = widgets.HTML()
        self._counters = widgets.HTML()
        self.actions = ActionBar(lambda: self.job, self._watcher)
        self.progress_bar = widgets.FloatProgress(
            min=0.0, max=1.0, layout=widgets.Layout(width="260px", margin="0 8px 0 0")
        )
        self._progress_label = widgets.HTML()
        self._progress = widgets.HBox(
            [self.progress_bar, self._progress_label],
            layout=widgets.Layout(align_items="center", display="none"),
        )
        self._progress.add_class("jsc-progress")
        self._timeline = widgets.HTML()
        self.log_stream = widgets.ToggleButtons(
            options=["stdout", "stderr"],
            value="stdout",
            tooltips=["last lines of the job's standard output", "last lines of its stderr"],
            style={"button_width": "70px"},
        )
        self._log = widgets.HTML()
        self._outcome = widgets.HTML()
        self.log_stream.observe(lambda _: self._render_log(), names="value")
        super().__init__(
            children=[
                self._header,
                self._counters,
                self._progress,
                self.actions,
                self._timeline,
                self.log_stream,
                self._log,
                self._outcome,
            ],
            layout=widgets.Layout(
                border="1px solid rgba(127,127,127,0.35)", padding="4px 8px", max_width="1000px"
            ),
            **kwargs,
        )
        self.add_class("jsc-job-widget")
        self.update([self._status])
        self._subscription = self._watcher.watch([job], self.update)

    @property
    def status(self) -> JobStatus:
        """The last status shown."""
        return self._status

    @property
    def jobs_shown(self) -> list[Job[Any]]:
        """The job, as a list (the common interface with the table)."""
        return [self.job]

    def statuses(self) -> list[JobStatus]:
        """The last status, as a list (the common interface with the table)."""
        return [self._status]

    def update(self, statuses: Sequence[JobStatus]) -> None:
        """Show a new status (called by the watcher thread: sets traits only)."""
        with self._lock:
            shown, self._shown = self._status if self._shown else None, True
            status = self._status = _newer(self._status, statuses[0])
            if status == shown:  # only the clock moved (snapshots compare without it)
                self.elapsed = elapsed_text(status)
                self._header.value = header_html(status)
                return
            with self.hold_sync():
                self.job_id = status.job_id
                self.job_folder = status.folder
                self.job_name = status.name
                self.job_backend = status.backend
                self.job_state = status.state
                self.pending_reason = status.pending_reason or ""
                self.job_node = status.node or ""
                self.elapsed = elapsed_text(status)
                self.requeues = status.requeues
                self.preemptions = status.preemptions
                self.timeouts = status.timeouts
                self.counters = counters_text(status)
                self.job_done = status.done
                if len(self.timeline) != len(status.timeline):
                    self.timeline = [
                        {"t": row.t, "time": row.clock, "event": row.event, "details": row.details}
                        for row in status.timeline
                    ]
                self.progress = status.progress.as_dict() if status.progress else {}
                self.result = status.result or ""
                self.failure = status.failure or ""
            self._header.value = header_html(status)
            self._counters.value = counters_html(status)
            self._show_progress(status)
            self._timeline.value = timeline_html(status.timeline)
            self._render_log()
            self._outcome.value = outcome_html(status)
            self._outcome.layout.display = None if status.done else "none"
            self.actions.update(status)
        saved_outputs.changed(self)

    def _show_progress(self, status: JobStatus) -> None:
        progress = status.progress
        self._progress.layout.display = "none" if progress is None else None
        if progress is None:
            return
        known = progress.fraction is not None
        self.progress_bar.layout.display = None if known else "none"
        self.progress_bar.value = progress.fraction or 0.0
        self.progress_bar.bar_style = _BAR_STYLES.get(status.state, "info")
        words = escape(progress_text(status))
        self._progress_label.value = f"<span style='font-size:12px'>{words}</span>"

    def _render_log(self) -> None:
        with self._lock:
            self._log.value = log_html(self._status, str(self.log_stream.value))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = render_text(self._status)
        data["text/html"] = render_html(self._status)
        return data


class JobTableWidget(LiveView):
    """A job array (or any list of jobs) as one compact, live table, with the same actions.

    Parameters
    ----------
    jobs
        The jobs, one row each.
    watcher
        The poller feeding the widget (default: the process's shared one).
    """

    rows = List(Dict()).tag(sync=True)
    summary = Unicode("").tag(sync=True)

    def __init__(
        self, jobs: Sequence[Job[Any]], watcher: Watcher | None = None, **kwargs: Any
    ) -> None:
        self.jobs = list(jobs)
        if not self.jobs:
            raise ValueError("no jobs to display")
        self._lock = threading.RLock()
        self._statuses = [collect_status(job, details=False) for job in self.jobs]
        self._watcher = watcher or get_watcher()
        self._summary = widgets.HTML()
        self._table = widgets.HTML()
        self.selector = widgets.Dropdown(
            options=[(label, index) for index, label in enumerate(job_labels(self._statuses))],
            value=0,
            description="act on",
            layout=widgets.Layout(width="auto"),
            style={"description_width": "initial"},
        )
        self.actions = ActionBar(lambda: self.jobs[int(self.selector.value)], self._watcher)
        self.selector.observe(lambda _: self._refresh_actions(), names="value")
        super().__init__(
            children=[
                self._summary,
                self._table,
                widgets.HBox(
                    [self.selector, self.actions],
                    layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
                ),
            ],
            layout=widgets.Layout(
                border="1px solid rgba(127,127,127,0.35)", padding="4px 8px", max_width="1000px"
            ),
            **kwargs,
        )
        self.add_class("jsc-job-table")
        self.update(self._statuses)
        self._subscription = self._watcher.watch(
            self.jobs, self.update, details=False
        )

    _details = False

    @property
    def jobs_shown(self) -> list[Job[Any]]:
        """The jobs, one row each."""
        return self.jobs

    def statuses(self) -> list[JobStatus]:
        """The last status of every row."""
        return list(self._statuses)

    def update(self, statuses: Sequence[JobStatus]) -> None:
        """Show new statuses (called by the watcher thread: sets traits only)."""
        with self._lock:
            statuses = [_newer(old, new) for old, new in zip(self._statuses, statuses)]
            self._statuses = statuses
            self.rows = [
                {
                    "job_id": s.job_id,
                    "folder": s.folder,
                    "state": s.state,
                    "elapsed": elapsed_text(s),
                    "node": s.node or "",
                    "requeues": s.requeues,
                    "preemptions": s.preemptions,
                    "timeouts": s.timeouts,
                    "done": s.done,
                    "progress": s.progress.as_dict() if s.progress else None,
                }
                for s in statuses
            ]
            self.summary = summary_text(statuses)
            self._summary.value = f"<b>{escape(self.summary)}</b>"
            self._table.value = table_html(statuses)
            self._refresh_actions()
        saved_outputs.changed(self)

    def _refresh_actions(self) -> None:
        with self._lock:
            self.actions.update(self._statuses[int(self.selector.value)])

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = render_table_text(self._statuses)
        data["text/html"] = render_table_html(self._statuses)
        return data


def widget_for(jobs: Job[Any] | Sequence[Job[Any]]) -> JobWidget | JobTableWidget:
    """A live widget for one job, or a table for a job array or list of jobs."""
    if isinstance(jobs, Job):
        return JobWidget(jobs)
    if isinstance(jobs, (list, tuple)) and all(isinstance(job, Job) for job in jobs):
        return JobTableWidget(jobs)
    raise TypeError(f"display_job() takes a Job or a list of Jobs, not {type(jobs).__name__}")


def display_job(jobs: Job[Any] | Sequence[Job[Any]]) -> None:
    """Display the live widget of a job, or one table for a job array or a list of jobs.

    Call it from the main thread (it calls ``display``). After each executed cell the output's
    ``text/html`` fallback is refreshed when the job changed, so a saved notebook shows the
    job's latest state without a kernel.
    """
    widget = widget_for(jobs)
    handle = display(widget, display_id=True)
    if isinstance(handle, DisplayHandle):
        saved_outputs.remember(widget, handle)

#: The progress bar's colour by state (ipywidgets' bar styles); running: "info".
_BAR_STYLES = {
    "COMPLETED": "success",
    "FAILED": "danger",
    "OUT_OF_MEMORY": "danger",
    "CANCELLED": "warning",
    "TIMEOUT": "warning",
    "PREEMPTED": "warning",
}
