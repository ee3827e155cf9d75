"""The work behind the REST handlers: the job listing, one job's reads and actions, clean-up.

Everything that touches the filesystem or the scheduler runs in worker threads, never on the
server's event loop. The listing (``listing.JobLister``: pages, filters) asks the live jobs
for their state, which may mean scheduler calls, so it is protected: it runs in one thread
(requests take turns), and a refresh is reused for ``min_poll_interval_s``. Jobs are read only
through the core's public objects and the job folder, opened ``read_only``: the server never
unpickles a result, removes a file or records an end (a dead job's end is recorded by the
job's own processes or the user's kernel), except when asked to act: cancel, interrupt,
resubmit, and clean (which removes the files of old jobs, never of a live one:
``core.clean``). A row of the listing is the job's snapshot (``views.status``: the one the
widget shows), read in that mode.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..core.clean import clean_folders
from ..core.errors import FailedSubmissionError, JobFolderError, UncompletedJobError
from ..core.job import Job
from ..core.paths import JobPaths, is_valid_job_id
from ..views.status import JobTimes
from ..views.terminal import read_tail
from .config import SlurmJobsConfig
from .discovery import OutsideRootsError, inside_roots, walk_job_folders
from .listing import JobLister, PageQuery, unsafe_reason
from .remote import RemoteRoots

T = TypeVar("T")

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
        self.remote_roots = RemoteRoots(config)
        self.lister = JobLister(config, base, _LIST_POOL.submit, self._remote_job_folders)

    def _roots(self) -> list[Path]:
        """The folders requests may name: the job roots, and the remote roots' mirrors."""
        return [*self.roots, *self.remote_roots.folders]

    def _remote_job_folders(self, scope: tuple[Path, ...]) -> list[Path]:
        """The job folders of the remote roots' mirrors, brought up to date first, when
        ``scope`` is all the job roots (called at each refresh of the listing)."""
        if not self.config.remote_roots or scope != tuple(self.roots):
            return []
        mirrors = self.remote_roots.refresh()
        depth, most = self.config.discovery_depth, self.config.discovery_max_folders
        return walk_job_folders(mirrors, depth, most).folders

    @property
    def refreshes(self) -> int:
        """Listing refreshes run so far (diagnostics and tests)."""
        return self.lister.refreshes

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

    async def list_jobs(self, scope: tuple[Path, ...], query: PageQuery) -> dict[str, Any]:
        """A page of the jobs below ``scope`` (see ``JobLister.page``), newest first, elapsed
        times as of now."""
        loop = asyncio.get_running_loop()
        page = await loop.run_in_executor(_LIST_POOL, self.lister.page, scope, query)
        now = time.time()
        return {**page, "jobs": [_with_elapsed(row, now) for row in page["jobs"]]}

    def invalidate(self) -> None:
        """Forget cached listings (after an action, so that the next list shows its effect)."""
        self.lister.invalidate()

    def clean(
        self, scope: tuple[Path, ...], older_than_s: float, states: list[str], dry_run: bool
    ) -> dict[str, Any]:
        """Remove the files of the jobs below ``scope`` that ended in ``states`` more than
        ``older_than_s`` ago (``core.clean``: never a job that may still run)."""
        folders = [folder for folder in self.lister.folders(scope) if not unsafe_reason(folder)]
        try:
            report = clean_folders(
                folders, older_than=older_than_s, states=states or None, dry_run=dry_run,
                catalog=self.lister.catalog,
            )  # fmt: skip
        except ValueError as error:
            raise JobRequestError(400, str(error)) from None
        if not dry_run:
            self.invalidate()
        return report.as_dict()

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
        reason = unsafe_reason(real)
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


def _read_only(job: Job[Any]) -> Job[Any]:
    """The server reads jobs only: it never unpickles a result (no size cap, code the job
    wrote), never removes files and never records an end; the user's processes do."""
    job.read_only = True
    return job


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
