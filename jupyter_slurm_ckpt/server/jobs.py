"""The work behind the REST handlers: the job listing and one job's reads and actions.

Everything that touches the filesystem or the scheduler runs in worker threads, never on the
server's event loop. The listing asks every live job for its state, which may mean scheduler
calls, so it is protected: one refresh at a time (a single-thread pool), its result reused for
``min_poll_interval_s``, and concurrent requests for the same folders share the refresh in
flight. Jobs are read only through the core's public objects and the job folder, opened
``read_only``: the server never unpickles a result, removes a file or records an end (a dead
job's end is recorded by the job's own processes or the user's kernel). A row of the listing is
the job's snapshot (``views.status``: the one the widget shows), read in that mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..core.errors import FailedSubmissionError, JobFolderError, UncompletedJobError
from ..core.files import check_folder_is_safe
from ..core.job import Job
from ..core.paths import JobKey, JobPaths, is_valid_job_id
from ..views.status import JobStatus, JobTimes, collect_status
from ..views.terminal import read_tail
from ..views.watcher import poll_states
from .config import SlurmJobsConfig
from .discovery import OutsideRootsError, inside_roots, job_ids_in, walk_job_folders
from .remote import RemoteRoots

T = TypeVar("T")

#: Listings kept for distinct folder selections (a client could ask for many).
_MAX_SCOPES = 16
#: The log tail reads at most this much of the end of a log file.
MAX_LOG_BYTES = 1 << 20

# Worker threads, shared by every server of the process: listing refreshes one at a time (they
# may call the scheduler), reads and actions on a few threads.
_LIST_POOL = ThreadPoolExecutor(1, thread_name_prefix="slurm-jobs-list")
_POOL = ThreadPoolExecutor(4, thread_name_prefix="slurm-jobs")


class JobRequestError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Listing:
    """One refresh of the listing: rows, newest first."""

    at: float
    rows: list[dict[str, Any]]
    truncated: bool = False


@dataclass
class _WalkCache:
    at: float
    folders: list[Path] = field(default_factory=list)


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it has the shape of a job id, else raise a 400."""
    if not is_valid_job_id(job_id):
        raise JobRequestError(400, f"{job_id[:40]!r} is not a job id (expected e.g. 123 or L7)")
    return job_id


class JobService:
    """Listing, reads and actions over the job folders below ``roots``.

    Parameters
    ----------
    config
        The extension's settings.
    roots
        Job roots, symlinks resolved (see ``discovery.real_roots``).
    base
        Where relative folder names start (the server's root_dir).
    """

    def __init__(self, config: SlurmJobsConfig, roots: list[Path], base: Path) -> None:
        self.config = config
        self.roots = roots
        self.base = base
        self.refreshes = 0  # listing refreshes run so far (diagnostics and tests)
        self._listings: dict[tuple[Path, ...], Listing] = {}
        self._pending: dict[tuple[Path, ...], asyncio.Future[Listing]] = {}
        self._walks: dict[tuple[Path, ...], _WalkCache] = {}
        self._jobs: dict[JobKey, Job[Any]] = {}  # touched by the list thread only
        self.remote_roots = RemoteRoots(config)

    def _roots(self) -> list[Path]:
        """The folders requests may name: the job roots, and the remote roots' mirrors."""
        return [*self.roots, *self.remote_roots.folders]

    # -- listing --------------------------------------------------------------------------------

    def scope(self, folders: list[str]) -> tuple[Path, ...]:
        """The folders a listing covers: the given ones (checked) or all job roots."""
        if not folders:
            return tuple(self.roots)
        try:
            roots = self._roots()
            return tuple(dict.fromkeys(inside_roots(f, roots, self.base) for f in folders))
        except OutsideRootsError as error:
            raise JobRequestError(404, str(error)) from None

    async def list_jobs(self, scope: tuple[Path, ...]) -> list[dict[str, Any]]:
        """Rows of the jobs below ``scope``, newest first, elapsed times as of now."""
        cached = self._listings.get(scope)
        if cached is None or time.monotonic() - cached.at >= self.config.min_poll_interval_s:
            cached = await asyncio.shield(self._refresh_once(scope))
        now = time.time()
        return [_with_elapsed(row, now) for row in cached.rows]

    def _refresh_once(self, scope: tuple[Path, ...]) -> asyncio.Future[Listing]:
        pending = self._pending.get(scope)
        if pending is not None:
            return pending  # a refresh is in flight: share it
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(_LIST_POOL, self._refresh, scope)
        self._pending[scope] = future

        def store(done: asyncio.Future[Listing]) -> None:
            if self._pending.get(scope) is done:
                del self._pending[scope]
            if not done.cancelled() and done.exception() is None:
                if len(self._listings) >= _MAX_SCOPES:
                    self._listings.pop(next(iter(self._listings)))
                self._listings[scope] = done.result()

        future.add_done_callback(store)
        return future

    def invalidate(self) -> None:
        """Forget cached listings (after an action, so that the next list shows its effect)."""
        self._listings.clear()

    def _refresh(self, scope: tuple[Path, ...]) -> Listing:
        self.refreshes += 1
        started = time.monotonic()
        markers: list[tuple[float, JobKey]] = []
        folders = self._job_folders(scope)
        if scope == tuple(self.roots):  # all roots: the remote ones too
            folders = [*folders, *self._remote_job_folders()]
        for folder in folders:
            for job_id in job_ids_in(folder):
                with contextlib.suppress(OSError):
                    mtime = JobPaths(folder, job_id).info.stat().st_mtime
                    markers.append((mtime, JobKey(folder, job_id)))
        markers.sort(key=lambda marker: marker[0], reverse=True)
        kept = [key for _, key in markers[: self.config.max_jobs]]
        safe: dict[Path, str | None] = {}
        for key in kept:
            if key.folder not in safe:
                safe[key.folder] = _unsafe_reason(key.folder)
        states = self._poll([key for key in kept if not safe[key.folder]])
        rows = [self._describe(key, safe[key.folder], states.get(key)) for key in kept]
        rows.sort(key=lambda row: (row["submitted_at"] or 0.0, row["id"]), reverse=True)
        wanted = set(kept)
        for key in [key for key in self._jobs if key not in wanted]:
            del self._jobs[key]
        return Listing(started, rows, truncated=len(markers) > len(kept))

    def _remote_job_folders(self) -> list[Path]:
        """The job folders of the remote roots' mirrors, brought up to date first."""
        if not self.config.remote_roots:
            return []
        mirrors = self.remote_roots.refresh()
        depth, most = self.config.discovery_depth, self.config.discovery_max_folders
        return walk_job_folders(mirrors, depth, most).folders

    def _job_folders(self, scope: tuple[Path, ...]) -> list[Path]:
        cache = self._walks.get(scope)
        if cache is None or time.monotonic() - cache.at >= self.config.discovery_interval_s:
            walk = walk_job_folders(
                scope, self.config.discovery_depth, self.config.discovery_max_folders
            )
            cache = _WalkCache(time.monotonic(), walk.folders)
            if len(self._walks) >= _MAX_SCOPES:
                self._walks.pop(next(iter(self._walks)))
            self._walks[scope] = cache
        return cache.folders

    def _poll(self, keys: list[JobKey]) -> dict[JobKey, str]:
        """The states of these jobs from one scheduler call per backend (its batched
        ``poll_states`` hook), not one call per job; jobs it misses are asked one by one."""
        jobs: dict[JobKey, Job[Any]] = {}
        for key in keys:
            with contextlib.suppress(Exception):  # _describe reports the broken ones
                jobs[key] = self._job(key)
        states = poll_states(list(jobs.values()))
        return {key: states[job.key] for key, job in jobs.items() if job.key in states}

    def _job(self, key: JobKey) -> Job[Any]:
        """The server's read-only handle on a job, kept from one refresh to the next (its
        events are read incrementally)."""
        job = self._jobs.get(key)
        if job is None:
            job = self._jobs[key] = _read_only(Job(key.folder, key.job_id))
        return job

    def _describe(self, key: JobKey, unsafe: str | None, state: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {"id": key.job_id, "folder": str(key.folder), "error": None}
        if unsafe is not None:  # never unpickle from a folder others can write to
            return {**_broken(row), "error": unsafe}
        try:
            status = collect_status(self._job(key), state, details=False)
        except Exception as error:  # a corrupt job is shown as such, not a broken listing
            self._jobs.pop(key, None)
            return {**_broken(row), "error": f"{type(error).__name__}: {error}"}
        return {**row, **_row(status)}

    # -- one job --------------------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` in a worker thread, answering 504 after the timeout."""
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(_POOL, functools.partial(fn, *args))
        try:
            return await asyncio.wait_for(work, timeout=self.config.action_timeout_s)
        except asyncio.TimeoutError:
            raise JobRequestError(
                504, f"the job did not answer within {self.config.action_timeout_s:g} s"
            ) from None

    def open_job(self, folder: str | None, job_id: str) -> Job[Any]:
        """The job ``job_id`` of ``folder``, after every check (runs in a worker thread)."""
        check_job_id(job_id)
        if not folder:
            raise JobRequestError(400, "the job's folder is required (folder=...)")
        try:
            real = inside_roots(folder, self._roots(), self.base)
        except OutsideRootsError as error:
            raise JobRequestError(404, str(error)) from None
        if not real.is_dir():
            raise JobRequestError(404, f"no job folder {folder!r}")
        reason = _unsafe_reason(real)
        if reason is not None:
            raise JobRequestError(403, reason)
        marker = JobPaths(real, job_id).info
        if not marker.is_file() or marker.is_symlink():
            raise JobRequestError(404, f"no job {job_id} in {folder!r}")
        try:
            return _read_only(Job(real, job_id))
        except JobFolderError as error:
            raise JobRequestError(404, str(error)) from None

    def events(self, folder: str | None, job_id: str) -> list[dict[str, Any]]:
        """The job's events (``<id>_events.jsonl``)."""
        return self.open_job(folder, job_id).events()

    def log_tail(
        self, folder: str | None, job_id: str, stream: str, lines: int, task: int
    ) -> dict[str, Any]:
        """The last ``lines`` lines of a task's stdout (``out``) or stderr (``err``) as a terminal
        shows them: ``text`` (colours stripped) and ``html`` (escaped, colours as styles)."""
        job = self.open_job(folder, job_id)
        if not 0 <= task < job.num_tasks:
            raise JobRequestError(400, f"job {job_id} has tasks 0..{job.num_tasks - 1}")
        paths = job.paths.for_task(task)
        path = paths.stdout if stream == "out" else paths.stderr
        answer = {"id": job_id, "task": task, "stream": stream, "path": str(path)}
        if not path.is_file() or path.is_symlink():
            return {**answer, "text": None, "html": None}
        screen = read_tail(path, lines, MAX_LOG_BYTES)
        return {**answer, "text": screen.text, "html": screen.html}

    def interrupt(self, folder: str | None, job_id: str, timeout: bool) -> dict[str, Any]:
        """Simulate a preemption (or a timeout) of a running job."""
        job = self.open_job(folder, job_id)
        try:
            job._interrupt(timeout=timeout)
        except (UncompletedJobError, RuntimeError, ProcessLookupError) as error:
            raise JobRequestError(409, str(error)) from None
        except NotImplementedError:
            raise JobRequestError(501, f"the {job.info.cluster} backend cannot interrupt") from None
        self.invalidate()
        return {"id": job_id, "action": "timeout" if timeout else "preemption", "ok": True}

    def cancel(self, folder: str | None, job_id: str) -> dict[str, Any]:
        """Cancel a job (a finished one is left as it is)."""
        job = self.open_job(folder, job_id)
        try:
            job.cancel()
        except NotImplementedError:
            raise JobRequestError(501, f"the {job.info.cluster} backend cannot cancel") from None
        self.invalidate()
        return {"id": job_id, "action": "cancel", "ok": True, "state": job.state}

    def resubmit(self, folder: str | None, job_id: str) -> dict[str, Any]:
        """Continue an ended job from its last checkpoint, as a new job (in its folder), once:
        a second request gets the job the first one made (``created`` false)."""
        job = self.open_job(folder, job_id)
        try:
            again = job.resubmit_once()
        except UncompletedJobError as error:
            raise JobRequestError(409, str(error)) from None
        except FailedSubmissionError as error:
            raise JobRequestError(502, f"the resubmission failed: {error}") from None
        self.invalidate()
        return {
            "id": job_id,
            "action": "resubmit",
            "ok": True,
            "new_id": again.job.job_id,
            "created": again.created,
        }


def _row(status: JobStatus) -> dict[str, Any]:
    """A job's row of the listing, from its snapshot (the same one the widget shows)."""
    times = status.times
    return {
        "name": status.name,
        "backend": status.backend,
        "state": status.state,
        "requeues": status.requeues,
        "preemptions": status.preemptions,
        "timeouts": status.timeouts,
        "runs": status.runs,
        "node": status.node,
        "num_tasks": status.num_tasks,
        "submitted_at": status.submitted_at,
        "started_at": times.started_at,
        "run_started_at": times.run_started_at,
        "run_ended_at": times.run_ended_at,
        "ended_at": times.ended_at,
        "last_event": status.last_event,
        "not_requeued_reason": status.not_requeued_reason,
        "progress": status.progress.as_dict() if status.progress else None,
        "resubmitted_as": status.resubmitted_as,
    }


def _read_only(job: Job[Any]) -> Job[Any]:
    """The server reads jobs only: it never unpickles a result (no size cap, code the job
    wrote), never removes files and never records an end; the user's processes do."""
    job.read_only = True
    return job


def _unsafe_reason(folder: Path) -> str | None:
    try:
        check_folder_is_safe(folder)
    except (JobFolderError, OSError) as error:
        return str(error)
    return None


def _broken(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "name": None,
        "backend": None,
        "state": "UNKNOWN",
        "requeues": 0,
        "preemptions": 0,
        "timeouts": 0,
        "runs": 0,
        "node": None,
        "num_tasks": None,
        "submitted_at": None,
        "started_at": None,
        "run_started_at": None,
        "run_ended_at": None,
        "ended_at": None,
        "last_event": None,
        "not_requeued_reason": None,
        "progress": None,
    }


def _with_elapsed(row: dict[str, Any], now: float) -> dict[str, Any]:
    """The row with ``elapsed_s`` (since the first start) and ``run_elapsed_s`` (the current
    run's), as of ``now``."""
    times = JobTimes(row["started_at"], row["run_started_at"], row["run_ended_at"], row["ended_at"])
    elapsed, run_elapsed = times.elapsed(now)
    return {
        **row,
        "elapsed_s": None if elapsed is None else round(elapsed, 1),
        "run_elapsed_s": None if run_elapsed is None else round(run_elapsed, 1),
    }
