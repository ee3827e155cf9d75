"""Debug backend: runs the job in this process, for quick iteration.

``result()`` runs the callable here; ``_interrupt`` calls its checkpoint and swaps the payload
synchronously, through the same decision code as a real job. It never starts a debugger (that
would freeze a notebook): failures come back as ``FailedJobError`` with the traceback.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ..core import payload
from ..core.environment import ENV_CLUSTER, ENV_FOLDER, ENV_JOB_ID, ENV_RESTART_COUNT
from ..core.events import append_event
from ..core.executor import Executor
from ..core.helpers import DelayedSubmission
from ..core.job import Job
from ..core.paths import template_root
from ..core.progress import flush_progress
from ..core.worker import SignalHandler


class _Requeued(Exception):
    """Raised by the debug runtime to end the interrupted (synchronous) run."""


class _DebugRuntime:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def signal_reason(self) -> str:
        return self.reason

    def requeue(self) -> None:
        raise _Requeued


class DebugJob(Job[Any]):
    """A job run in this process when its result is asked for."""

    cluster: ClassVar[str] = "debug"

    def __init__(self, folder: str | Path, job_id: str, task_id: int | None = None) -> None:
        super().__init__(folder, job_id, task_id)
        self._delayed: DelayedSubmission[Any] | None = None
        self._restarts = 0
        self._running = False

    def _live_state(self) -> str:
        return "RUNNING" if self._running else "PENDING"

    def _live_final(self, state: str) -> bool:
        return False

    @contextmanager
    def _job_environment(self) -> Iterator[None]:
        saved = dict(os.environ)
        os.environ.update(
            {ENV_JOB_ID: self.job_id, ENV_FOLDER: str(self.paths.folder), ENV_CLUSTER: "debug"}
        )
        if self._restarts:
            os.environ[ENV_RESTART_COUNT] = str(self._restarts)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _payload(self) -> DelayedSubmission[Any]:
        if self._delayed is None:  # re-attached from another process
            self._delayed = payload.load(self.paths.submitted_pickle)
        return self._delayed

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
        except Exception:
            trace = traceback.format_exc()
            payload.dump(("error", trace), self.paths.result_pickle)
            append_event(self.paths.events, "failed", reason=trace.strip().splitlines()[-1])
        else:
            payload.dump(("success", value), self.paths.result_pickle)
            append_event(self.paths.events, "completed", task=0)
        finally:
            self._running = False

    def wait(self, timeout: float | None = None) -> None:
        """Run the job here if it has not run yet (``timeout`` does not apply)."""
        if not self.done():
            self._run()

    def _interrupt(self, timeout: bool = False) -> None:
        """Checkpoint and requeue synchronously (the job has not run, or runs next time)."""
        if self.done():
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
            self._delayed = payload.load(self.paths.submitted_pickle)
            return
        if self.summary().not_requeued_reason:
            state = "TIMEOUT" if timeout else "PREEMPTED"
            append_event(
                self.paths.events, "failed", state=state, reason=self.summary().not_requeued_reason
            )

    def _cancel(self) -> None:
        """Nothing runs in the background: the recorded event is the cancellation."""


class DebugExecutor(Executor):
    """Run jobs in this process when their result is asked for (no background processes)."""

    cluster: ClassVar[str] = "debug"
    job_class: ClassVar[type[Job[Any]]] = DebugJob
    specific_parameters: ClassVar[dict[str, type]] = {
        "signal_delay_s": float,
        "max_num_timeout": int,
    }

    def _allocate_job_ids(self, count: int, array: bool) -> list[str]:
        root = template_root(self.folder)
        existing = {p.name.split("_")[0] for p in root.glob("D*_job.json")}
        number = 1 + max((int(i[1:]) for i in existing if i[1:].isdigit()), default=0)
        return [f"D{number}_{i}" for i in range(count)] if array else [f"D{number}"]

    def _launch(self, job_ids: list[str]) -> None:
        """Debug jobs start when their result is asked for."""

    def _submit_submissions(
        self, submissions: list[DelayedSubmission[Any]], array: bool
    ) -> list[Job[Any]]:
        jobs = super()._submit_submissions(submissions, array)
        for job, delayed in zip(jobs, submissions):
            assert isinstance(job, DebugJob)
            job._delayed = delayed
        return jobs
