"""``Job``: a handle on a submitted job, in the ``concurrent.futures`` vocabulary.

A ``Job`` is rebuilt from nothing but its folder and id, in any process: every fact it reports
comes from the job folder (results, events, description) and, while the job is live, from its
backend (scheduler or local controller).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import TimeoutError as FuturesTimeoutError
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from . import payload, registry
from .awaitable import AsyncJobProxy
from .errors import FailedJobError, JobFolderError, UncompletedJobError
from .events import EventReader, EventSummary, append_event, last_run, summarize
from .helpers import DelayedSubmission
from .info import JobInfo
from .outcome import failed_task_error, read_outcome
from .paths import JobKey, JobPaths, is_valid_job_id, resolve_folder
from .resubmission import Resubmission, resubmit_once
from .runs import results_of_last_run

R = TypeVar("R")

#: States after which nothing more happens to a job.
FINAL_STATES = frozenset(
    {"COMPLETED", "DONE", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "OUT_OF_MEMORY"}
)

# How long waiting sleeps between looks: short first (results land within tens of ms).
_FIRST_POLL_S = 0.005
_MAX_POLL_S = 0.04

class Job(Generic[R]):
    """A submitted job. ``Job(folder, job_id)`` re-attaches to any job of a job folder.

    Parameters
    ----------
    folder
        The job folder (a ``%j`` template is resolved with ``job_id``).
    job_id
        The job's id, as ``job.job_id`` printed it.
    """

    cluster: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.cluster:
            registry.register_job_class(cls)

    def __new__(cls, folder: str | Path, job_id: str, *args: Any, **kwargs: Any) -> Job[Any]:
        if cls is Job:  # generic re-attach: the description names the backend
            info = JobInfo.read(JobPaths.create(folder, str(job_id)).info)
            job = super().__new__(registry.job_class(info.cluster))
            job.__dict__["_info"] = info  # read once (see __init__)
            return job
        return super().__new__(cls)

    def __init__(self, folder: str | Path, job_id: str, task_id: int | None = None) -> None:
        job_id = str(job_id)
        if not is_valid_job_id(job_id):
            raise ValueError(f"{job_id!r} is not a job id (expected e.g. 123, 123_4, L7 or DEBUG2)")
        self._folder_template = folder
        self.job_id = job_id
        self.paths = JobPaths(resolve_folder(folder, job_id), job_id, task_id or 0)
        self._task_id = task_id
        self._info: JobInfo | None = self.__dict__.get("_info")  # read by __new__, if so
        self._events = EventReader(self.paths.events)
        self._final_state: str | None = None
        self._cancel_at_deletion = False
        #: Set by views that only read (the Jupyter server's GETs and listings): reading this
        #: job's state then never unpickles a result, never records what it sees (an end
        #: event) and never removes temporaries. The user's own processes may do those; the
        #: actions asked of the job (``cancel``, ``_interrupt``) still act.
        self.read_only = False

    @property
    def key(self) -> JobKey:
        """The job's identity: its folder (absolute) and its id (and the task of a task view)."""
        return JobKey(self.paths.folder, self.job_id, self._task_id)

    def __reduce__(self) -> tuple[Any, ...]:
        # A job pickles as what re-attaches it: its folder, id and task.
        return (type(self), (self._folder_template, self.job_id, self._task_id))

    # -- what the folder says -------------------------------------------------------------

    @property
    def info(self) -> JobInfo:
        """The job's description (backend, parameters), read once."""
        if self._info is None:
            self._info = JobInfo.read(self.paths.info)
        return self._info

    @property
    def num_tasks(self) -> int:
        """Number of tasks of the job."""
        return self.info.num_tasks

    def events(self) -> list[dict[str, Any]]:
        """The job's events so far (see ``core.events``); an array element's first is its
        ``submitted``, which its array's description records (``JobInfo.submitted_events``)."""
        events = list(self._events.read())
        if not events or events[0].get("event") != "submitted":
            with contextlib.suppress(JobFolderError):
                events[:0] = self.info.submitted_events()
        return events

    @property
    def unreadable_event_lines(self) -> int:
        """How many complete lines of the events file were not events (damaged), so skipped."""
        self._events.read()
        return self._events.bad_lines

    def summary(self) -> EventSummary:
        """Counters folded from the events: runs, requeues, preemptions, timeouts."""
        return summarize(self._events.read())

    @property
    def restart_count(self) -> int:
        """How many times the job was requeued."""
        return self.summary().restart_count

    def _task_ids(self) -> list[int]:
        return [self._task_id] if self._task_id is not None else list(range(self.num_tasks))

    def _folder_state(self, *, processes_gone: bool = False) -> str | None:
        """A final state when the folder alone proves one, else None.

        A task writes its result file a moment before its end event (``completed`` or
        ``failed``). Until that event is read, the result proves the end only once the
        backend knows that no process of the job is left (``processes_gone``): so the job
        never reads as ended (``wait()`` returning) before the event that says how it ended.
        """
        tasks = self._task_ids()
        if self._results_of_this_run() == tasks:
            succeeded = [self._succeeded(t, unpickle=processes_gone) for t in tasks]
            if None not in succeeded:
                return "COMPLETED" if all(succeeded) else "FAILED"
        terminal = self.summary().terminal
        if terminal is None or terminal["event"] == "completed":
            return None
        if terminal["event"] == "cancelled":
            return "CANCELLED"
        return str(terminal.get("state", "FAILED"))

    def _succeeded(self, task: int, *, unpickle: bool) -> bool | None:
        """Whether the task's result is a success: told by its end event when there is one,
        so that no result is unpickled (a reader in another Python could not load it anyway).
        Without that event, by unpickling the result if ``unpickle`` (and this job is not
        :attr:`read_only`), else None: not known yet."""
        ended = last_run(self._events.read()).ends.get(task)
        if ended is not None:
            return ended
        if self.read_only or not unpickle:
            return None
        return read_outcome(self.paths.for_task(task).result_pickle)[0] == "success"

    def result_bytes(self, task: int = 0) -> int | None:
        """The size of the task's result file, None while there is none (views load no result
        too large to show; a backend whose jobs live elsewhere knows it from there)."""
        path = self.paths.for_task(task).result_pickle
        return path.stat().st_size if path.exists() else None

    # -- backend hooks: what the folder cannot tell, and the actions -------------------------

    def _live_state(self) -> str:
        """The backend's view of a job whose folder shows no end yet (PENDING, RUNNING,
        REQUEUED...): :attr:`state` asks it only then. Default: UNKNOWN."""
        return "UNKNOWN"

    def _live_final(self, state: str) -> bool:
        """Whether a state :meth:`_live_state` reported means the job is over (default: a
        final state; the debug backend's jobs end only once they ran)."""
        return state in FINAL_STATES

    @classmethod
    def poll_states(cls, jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
        """The states of ``jobs`` (all of this class), by :attr:`key`, as :attr:`state` tells
        them. A job missing from the answer is asked on its own (``job.state``).

        Views poll every job they watch through this, once a tick (``views.watcher``): a
        backend with a scheduler asks it once for all of them (Slurm: one ``sacct`` or
        ``squeue``). Default: each job's :attr:`state`, one by one.
        """
        return {job.key: job.state for job in jobs}

    @classmethod
    def held_by_backend(cls, jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
        """Which of ``jobs`` (all of this class, ended by their folder) their backend still
        holds (a scheduler that has them queued or running), and why: ``clean`` leaves those
        alone. Asked once for all of them. Default: none."""
        return {}

    @contextlib.contextmanager
    def _removal_guard(self) -> Iterator[bool]:
        """Held while ``clean`` removes the job's files: the backend cannot start the job
        meanwhile. Yields False when a process of the job still runs (nothing is removed
        then). Default: yields True (a backend with no process of its own)."""
        yield True

    @property
    def pending_reason(self) -> str | None:
        """Why the scheduler keeps the job PENDING (Slurm's ``Priority``, ``Resources``...);
        None when it does not say, or for a backend without a queue (the default)."""
        return None

    @property
    def scheduler_problem(self) -> str | None:
        """Why the scheduler cannot be asked about the job right now, if so (states then come
        from the job folder alone); None when it answers, or for backends without one."""
        return None

    def _cancel(self) -> None:
        """Stop the job and its whole process tree, or raise (e.g. a ``scancel`` that failed:
        :meth:`cancel` then records nothing). Default: raises ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot cancel")

    def _send_interrupt(self, reason: str) -> None:
        """Send the running job the checkpoint signal, after recording ``reason``
        (``"preemption"`` or ``"timeout"``) where the job reads it (``paths.signal_request``).
        Default: raises ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot interrupt")

    # -- the Future vocabulary ----------------------------------------------------------------

    @property
    def state(self) -> str:
        """PENDING, RUNNING, REQUEUED, COMPLETED, FAILED, CANCELLED, TIMEOUT, ..."""
        if self._final_state is None:
            self._final_state = self._folder_state()
        if self._final_state is not None:
            return self._final_state
        return self._live_state()

    def done(self, force_check: bool = False) -> bool:
        """Whether the job has ended (successfully or not)."""
        state = self.state
        return state in FINAL_STATES and (self._final_state is not None or self._live_final(state))

    def wait(self, timeout: float | None = None) -> None:
        """Block until the job has ended, or raise ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _FIRST_POLL_S
        while not self.done():
            if deadline is not None and time.monotonic() >= deadline:
                raise FuturesTimeoutError(f"job {self.job_id} still {self.state} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, _MAX_POLL_S)

    def results(self, timeout: float | None = None) -> list[R]:
        """Results of all tasks; raises ``FailedJobError`` with the remote traceback on failure.

        The first task that failed is reported, even when another task has no result yet (a
        multi-task job ends when one task fails; the others may still be finishing).
        """
        outcomes = self._outcomes()
        if len(outcomes) < len(self._task_ids()):  # not over yet, or over without a result
            self.wait(timeout)
            outcomes = self._outcomes()
        elif self._final_state is None:  # every task's outcome is here: that is the end
            failed = any(status != "success" for status, _ in outcomes.values())
            self._final_state = "FAILED" if failed else "COMPLETED"
        return self._results_of(outcomes)

    def results_in_folder(self) -> list[R]:
        """The results as the job folder holds them now, without waiting (what a view reads):
        as :meth:`results`, with ``UncompletedJobError`` for a task that has no result yet."""
        return self._results_of(self._outcomes())

    def _results_of(self, outcomes: dict[int, tuple[str, Any]]) -> list[R]:
        """The values of ``outcomes`` (one per task), or the error of the first that failed."""
        for task, (status, value) in outcomes.items():
            if status != "success":
                raise failed_task_error(self.paths.for_task(task), str(value))
        missing = [task for task in self._task_ids() if task not in outcomes]
        if missing:
            raise UncompletedJobError(self._why_no_result(missing[0]))
        return [value for _, value in outcomes.values()]

    def _outcomes(self) -> dict[int, tuple[str, Any]]:
        """The outcome of each task whose result file of the last run is on disk (unpickled)."""
        tasks = self._results_of_this_run()
        return {task: read_outcome(self.paths.for_task(task).result_pickle) for task in tasks}

    def _results_of_this_run(self) -> list[int]:
        """This job's tasks whose result file is there and was written by the job's last run
        (a task's result of a run that was requeued is not: ``runs.results_of_last_run``)."""
        num_tasks, tasks = self.num_tasks, self._task_ids()
        events = self._events.read() if num_tasks > 1 else []
        return results_of_last_run(self.paths, events, num_tasks, tasks)

    def result(self, timeout: float | None = None) -> R:
        """The result of the job (of task 0 for a multi-task job: see :meth:`results`)."""
        return self.results(timeout)[0]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The error that ``result()`` would raise, or None."""
        try:
            self.results(timeout)
        except (FailedJobError, UncompletedJobError) as error:
            return error
        return None

    def _why_no_result(self, task: int) -> str:
        summary = self.summary()
        terminal = summary.terminal or {}
        if terminal.get("event") == "cancelled":
            by = terminal.get("by", "user")
            return (
                f"Job {self.job_id} (task {task}) was cancelled (by {by}): it ended without a "
                f"result. Logs: {self.paths.for_task(task).stderr}"
            )
        state = self.state
        if terminal.get("event") is None and state not in FINAL_STATES:
            return f"Job {self.job_id} (task {task}) has no result yet: it is {state}"
        reason = terminal.get("reason") or summary.not_requeued_reason or "no reason recorded"
        return (
            f"Job {self.job_id} (task {task}) ended in state {state} without a result: "
            f"{reason}. Logs: {self.paths.for_task(task).stderr}"
        )

    def stdout(self, task: int | None = None) -> str | None:
        """The standard output so far (all runs), or None if there is none yet.

        Of ``task`` when given, else of this job's task(s): a multi-task job joins its tasks'
        outputs with a newline, as submitit does.
        """
        return self._logs("stdout", task)

    def stderr(self, task: int | None = None) -> str | None:
        """The standard error so far (all runs), or None; tasks as in :meth:`stdout`."""
        return self._logs("stderr", task)

    def _logs(self, stream: str, task: int | None) -> str | None:
        tasks = self._task_ids() if task is None else [task]
        texts = [_read_text(getattr(self.paths.for_task(t), stream)) for t in tasks]
        found = [text for text in texts if text is not None]
        return "\n".join(found) if found else None

    def cancel(self, check: bool = True) -> bool:
        """Cancel the job (its whole process tree); a finished job is left as it is.

        Returns True when this call cancelled the job, False when it had ended already (or,
        without ``check``, when the backend failed to cancel it), as
        ``concurrent.futures.Future.cancel`` does.

        Parameters
        ----------
        check
            Raise when the backend fails to cancel (the default, as submitit); with False a
            failure is ignored (for clean-up code).

        The job is recorded as cancelled once its backend has cancelled it: a cancel that
        failed records nothing, and the job runs on.

        Raises
        ------
        Exception
            With ``check``, what the backend raised when it could not cancel (e.g. a
            ``scancel`` that failed: ``SchedulerError`` with its message).
        """
        if self.done():
            return False
        try:
            self._cancel()
        except Exception:
            if check:
                raise
            return False
        self._record_cancelled()
        return True

    def _record_cancelled(self) -> None:
        """Record the user's cancel, unless the job's end is recorded already."""
        if self.summary().terminal is None:
            append_event(self.paths.events, "cancelled", by="user")

    def cancel_at_deletion(self, value: bool = True) -> Job[R]:
        """Cancel the job when this object is garbage-collected (submitit's option); returns
        the job, for ``job = executor.submit(...).cancel_at_deletion()``."""
        self._cancel_at_deletion = value
        return self

    def __del__(self) -> None:
        if self.__dict__.get("_cancel_at_deletion"):
            with contextlib.suppress(Exception):  # interpreter shutdown, a vanished folder...
                self.cancel(check=False)

    def get_info(self, mode: str = "force") -> dict[str, str]:
        """What is known about the job, with the field names of ``sacct``: ``JobID``,
        ``State``, ``NodeList`` (the node of the last run) and ``Restarts``.

        ``mode`` is accepted for submitit compatibility: the state is always current.
        """
        state = self.state
        node = self.summary().node or ""
        restarts = str(self.restart_count)
        return {"JobID": self.job_id, "State": state, "NodeList": node, "Restarts": restarts}

    def resubmit(self) -> Job[R]:
        """Submit the job again, from its last checkpoint, as a new job (a new id).

        For a job that ended without its result: its requeue failed while Slurm's controller
        was away, a preemption cancelled it, it timed out more often than ``max_num_timeout``
        allows... Its payload as the last checkpoint left it runs again, with the same
        backend, folder and parameters. The old job's events record ``resubmitted`` (with the
        new id); the new job's description and ``submitted`` event name the old one.

        Once only: a second call, from this process or any other, even at the same moment,
        returns the job the first one made.

        Raises
        ------
        UncompletedJobError
            If the job has not ended, or has its result: it completed, or it failed with an
            error of its own (its result holds the traceback), which the same code from the
            same checkpoint would raise again.
        """
        return self.resubmit_once().job

    def resubmit_once(self) -> Resubmission:
        """:meth:`resubmit`, saying too whether this call made the new job (``created``) or an
        earlier one had (the widget's and the sidebar's *Resubmit* say which). A backend whose
        jobs live elsewhere asks there (``ssh``)."""
        return resubmit_once(self)

    def submission(self) -> DelayedSubmission[R]:
        """The payload the next run would execute (updated by each checkpoint)."""
        delayed: DelayedSubmission[R] = payload.load(self.paths.submitted_pickle)
        return delayed

    def task(self, task_id: int) -> Job[R]:
        """A view of one task of a multi-task job (a one-task job is its own task 0)."""
        if not 0 <= task_id < self.num_tasks:
            raise ValueError(
                f"task_id {task_id} must be between 0 and {self.num_tasks - 1} "
                f"(job {self.job_id} has {self.num_tasks} task(s))"
            )
        if self.num_tasks == 1 and self._task_id is None:
            return self
        view = type(self)(self._folder_template, self.job_id, task_id)
        view.read_only = self.read_only
        return view

    def awaitable(self) -> AsyncJobProxy[R]:
        """The same job for ``await``: ``await job.awaitable().result()``."""
        return AsyncJobProxy(self)

    def _interrupt(self, timeout: bool = False) -> None:
        """Simulate a preemption (or, with ``timeout=True``, a time limit) of the running job.

        The job receives the real signal, calls ``checkpoint()`` and requeues through the same
        path as on a cluster; the events file records which of the two it was.
        """
        state = self.state
        if state != "RUNNING":
            raise UncompletedJobError(
                f"job {self.job_id} is {state}: only a RUNNING job can be interrupted"
            )
        self._send_interrupt("timeout" if timeout else "preemption")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display: the live widget in a Jupyter kernel, a status text and table elsewhere
        (what the package registered: ``registry.register_display``; else its ``repr``)."""
        return registry.display(self) or {"text/plain": repr(self)}

    def __repr__(self) -> str:
        task = "" if self._task_id is None else f", task_id={self._task_id}"
        return f'{type(self).__name__}<job_id={self.job_id}{task}, state="{self.state}">'


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None
