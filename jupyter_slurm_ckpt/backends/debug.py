"""Debug backend: runs the job in this process, for quick iteration.

As in submitit, whoever waits for a debug job runs it here: ``result()``, ``wait()``,
``done()``, ``exception()``. Its states are submitit's: QUEUED, RUNNING, DONE, and FAILED or
CANCELLED. ``_interrupt`` calls its checkpoint and swaps the payload synchronously, through the
same decision code as a real job. It never starts a debugger (that would freeze a notebook):
``exception()`` returns the callable's own exception object, ``result()`` raises
``FailedJobError`` with the traceback, caused by that exception.

Ids are ``DEBUG1``, ``DEBUG2``... (``DEBUG3_0`` for an array element), from a counter of the
job folder shared by every process that submits there.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from ..core import payload
from ..core.environment import set_worker_environment
from ..core.errors import FailedJobError
from ..core.events import append_event
from ..core.executor import Executor, Reservation
from ..core.files import next_counter_value
from ..core.helpers import DelayedSubmission
from ..core.job import Job
from ..core.parameters import Check
from ..core.paths import PackagePaths
from ..core.payload import Pickled
from ..core.progress import flush_progress
from ..core.worker import SignalHandler, Termination


class _Requeued(Exception):
    """Raised by the debug runtime to end the interrupted (synchronous) run."""


class _DebugRuntime:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def signal_reason(self) -> str:
        return self.reason

    def termination(self) -> Termination | None:
        return None  # nothing runs in the background to be terminated

    def requeue(self, deadline: float) -> None:
        """The next ``result()`` runs the new payload: nothing to ask."""

    def end_run(self) -> NoReturn:
        raise _Requeued


class DebugJob(Job[Any]):
    """A job run in this process when its result is asked for."""

    cluster: ClassVar[str] = "debug"

    def __init__(self, folder: str | Path, job_id: str, task_id: int | None = None) -> None:
        super().__init__(folder, job_id, task_id)
        self._submission: DelayedSubmission[Any] | None = None
        self._restarts = 0
        self._running = False
        self._error: BaseException | None = None  # the callable's own, when it ran here

    def _live_state(self) -> str:
        return "RUNNING" if self._running else "QUEUED"

    def _live_final(self, state: str) -> bool:
        return False

    @property
    def state(self) -> str:
        """QUEUED, RUNNING, DONE, FAILED or CANCELLED (submitit's names for a debug job)."""
        state = super().state
        return "DONE" if state == "COMPLETED" else state

    @contextmanager
    def _job_environment(self) -> Iterator[None]:
        saved = dict(os.environ)
        set_worker_environment(self.info, self.paths, self._restarts)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _payload(self) -> DelayedSubmission[Any]:
        if self._submission is None:  # re-attached from another process
            self._submission = payload.load(self.paths.submitted_pickle)
        return self._submission

    def _run(self) -> None:
        delayed = self._payload()
        append_event(
            self.paths.events,
            "started",
            run=self._restarts,
            node=socket.gethostname(),
            pid=os.getpid(),
        )
        self._running = True
        try:
            with self._job_environment():
                try:
                    value = delayed.result()
                finally:
                    flush_progress()  # the last step reached, before the end is recorded
        except Exception as error:
            self._error = error
            trace = traceback.format_exc()
            payload.dump(("error", trace), self.paths.result_pickle)
            append_event(self.paths.events, "failed", reason=trace.strip().splitlines()[-1])
        else:
            payload.dump(("success", value), self.paths.result_pickle)
            append_event(self.paths.events, "completed", task=0)
        finally:
            self._running = False

    def _has_ended(self) -> bool:
        return Job.done(self)

    def wait(self, timeout: float | None = None) -> None:
        """Run the job here if it has not run yet (``timeout`` does not apply)."""
        if not self._has_ended():
            self._run()

    def done(self, force_check: bool = False) -> bool:
        """Run the job here if it has not run yet, then True (as submitit's debug jobs do)."""
        self.wait()
        return self._has_ended()

    def results(self, timeout: float | None = None) -> list[Any]:
        """Run the job here if needed; see ``Job.results`` (a failure is caused by the
        callable's own exception when it ran in this process)."""
        try:
            return super().results(timeout)
        except FailedJobError as failure:
            if self._error is None:
                raise
            raise failure from self._error

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The callable's own exception when it ran in this process, else as ``Job``."""
        found = super().exception(timeout)
        return self._error if self._error is not None and found is not None else found

    def cancel(self, check: bool = True) -> bool:
        """Mark the job cancelled (nothing runs in the background); an ended job is left
        (False)."""
        if self._has_ended():
            return False
        append_event(self.paths.events, "cancelled", by="user")
        return True

    def _interrupt(self, timeout: bool = False) -> None:
        """Checkpoint and requeue synchronously (the job has not run, or runs next time)."""
        if self._has_ended():
            raise RuntimeError(f"job {self.job_id} is {self.state}: it cannot be interrupted")
        reason = "timeout" if timeout else "preemption"
        handler = SignalHandler(
            self._payload(), self.paths, self.info, _DebugRuntime(reason), self._restarts
        )
        try:
            with self._job_environment():
                handler(0, None)
        except _Requeued:
            self._restarts += 1
            self._submission = payload.load(self.paths.submitted_pickle)
            return
        if self.summary().not_requeued_reason:
            state = "TIMEOUT" if timeout else "PREEMPTED"
            append_event(
                self.paths.events, "failed", state=state, reason=self.summary().not_requeued_reason
            )


class DebugExecutor(Executor):
    """Run jobs in this process when their result is asked for (no background processes)."""

    cluster: ClassVar[str] = "debug"
    job_class: ClassVar[type[Job[Any]]] = DebugJob
    specific_parameters: ClassVar[dict[str, Check]] = {"signal_delay_s": float}

    def _reserve_job_ids(self, count: int, array: bool) -> Reservation:
        """``DEBUG<n>`` (``DEBUG<n>_<i>`` for array elements), from the job folder's counter."""
        number = next_counter_value(PackagePaths.of(self.folder).job_counter(self.cluster))
        ids = [f"DEBUG{number}_{i}" for i in range(count)] if array else [f"DEBUG{number}"]
        return Reservation(ids, array)

    def _launch(self, reservation: Reservation) -> None:
        """Nothing to start: a debug job runs when its result is asked for."""

    def _make_job(self, job_id: str, pickled: Pickled, launched: Any) -> Job[Any]:
        """The job, holding the submitted object itself when it was pickled in this process
        (it runs that very object, as submitit's debug jobs do)."""
        job = super()._make_job(job_id, pickled, launched)
        assert isinstance(job, DebugJob)
        job._submission = pickled.obj
        return job
