"""What a cluster reached over SSH last said about this process's jobs there, and the one round
trip that refreshes all of them at once.

Every job asked about is *tracked* until it has ended. A refresh (the watcher's tick, a
``job.state`` whose answer is older than :attr:`RemoteStates.interval_s`, a wait for a result)
asks the remote side about every tracked job in one ``status`` request; the answer brings their
states and what their copies lack (``sync``), applied to the mirror before anyone reads it.
While the cluster cannot be reached, the last answers stand and :attr:`RemoteStates.problem`
says why; the first refresh that gets through catches every copy up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.files import PendingFile
from ...core.paths import JobKey, JobPaths
from ..slurm.state import STATES as SLURM_STATES
from .connection import RemoteUnreachable
from .mirror import MirroredJob, mirror_folder, stamp_copy
from .protocol import Reader
from .session import Remote
from .sync import apply, request_entry

#: Answers younger than this are not asked again (one round trip a second at most).
REFRESH_INTERVAL_S = 1.0
#: A job that has ended is asked about this much longer (its last events, its result).
FINAL_GRACE_S = 5.0


@dataclass
class JobAnswer:
    """What the remote side said about one job at one refresh."""

    state: str
    done: bool = False
    pending_reason: str | None = None
    scheduler_problem: str | None = None
    #: Size of each task's result file there (tasks without one are missing).
    results: dict[int, int] = field(default_factory=dict)
    error: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Tracked:
    """A job to ask about: where it is there, where its copy is here."""

    key: JobKey
    remote_folder: str
    paths: JobPaths
    num_tasks: int
    read_only: bool = False

    def names(self) -> dict[str, str]:
        """What names the job in a request: its folder there and its id."""
        return {"folder": self.remote_folder, "id": self.key.job_id}


class RemoteStates:
    """The answers of one :class:`Remote` about this process's jobs (see the module doc)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.interval_s = REFRESH_INTERVAL_S
        self._answers: dict[JobKey, JobAnswer] = {}
        self._tracked: dict[JobKey, Tracked] = {}
        self._done_since: dict[JobKey, float] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()  # one refresh at a time: the next one finds it fresh
        self._state_lock = threading.Lock()
        self._retrying: threading.Thread | None = None

    # -- what is known ------------------------------------------------------------------------

    def answer(self, key: JobKey) -> JobAnswer | None:
        """The last answer about a job (None: never answered)."""
        with self._state_lock:
            return self._answers.get(key)

    @property
    def problem(self) -> str | None:
        """Why the cluster cannot be reached right now (None: the last request got through)."""
        error = self.remote.last_error
        if error is None:
            return None
        since = self.remote.unreachable_since
        ago = f", for {time.time() - since:.0f} s" if since else ""
        return (
            f"the cluster {self.remote.where} cannot be reached{ago} ({error}); the jobs go "
            "on there, and this shows what it last said until it answers again"
        )

    def expire(self) -> None:
        """Ask at the next refresh (after an action changed a job)."""
        self._fetched = 0.0
        self.remote.expire_backoff()

    # -- asking -------------------------------------------------------------------------------

    def refresh(self, jobs: Iterable[Tracked], only_stale: bool = True) -> None:
        """Ask about ``jobs`` and every other tracked job, in one round trip.

        With ``only_stale``, nothing is asked when every one of ``jobs`` has an answer younger
        than :attr:`interval_s`.

        Raises
        ------
        RemoteUnreachable
            The last answers stand (see :attr:`problem`).
        """
        wanted = list(jobs)
        with self._lock:
            with self._state_lock:
                for job in wanted:
                    if job.key not in self._answers or not self._answers[job.key].done:
                        self._tracked[job.key] = job  # the caller's: it knows the job best
                fresh = time.monotonic() - self._fetched < self.interval_s
                if only_stale and fresh and all(j.key in self._answers for j in wanted):
                    return
                asked = list(self._tracked.values())
            if not asked:
                return
            self._ask(asked)

    def _ask(self, asked: list[Tracked]) -> None:
        entries = []
        for job in asked:
            copy = MirroredJob(job.paths)
            entry = request_entry(job.remote_folder, job.key.job_id, copy, job.num_tasks)
            entries.append({**entry, "read_only": job.read_only})
        request = {"op": "status", "jobs": entries, "policy": _policy()}

        def receive(answer: dict[str, Any], reader: Reader) -> None:
            for job, entry in zip(asked, answer.get("jobs") or []):
                self.take(job, entry, reader)

        self.remote.request(request, receive=receive)
        self._fetched = time.monotonic()

    def take(self, job: Tracked, entry: dict[str, Any], reader: Reader) -> JobAnswer:
        """Apply one job's answer to its copy and remember it (the answer's pieces are read
        from ``reader`` in any case)."""
        copy = None if entry.get("error") else MirroredJob(job.paths)
        apply(entry, reader, copy, self.descriptor(job.remote_folder), job.num_tasks)
        answer = JobAnswer(
            state=str(entry.get("state") or "UNKNOWN"),
            done=bool(entry.get("done")),
            pending_reason=entry.get("pending_reason"),
            scheduler_problem=entry.get("scheduler_problem"),
            results={int(k): int(v) for k, v in (entry.get("results") or {}).items()},
            error=entry.get("error"),
        )
        with self._state_lock:
            self._answers[job.key] = answer
            self._tracked.setdefault(job.key, job)
            if answer.done or answer.error:
                first = self._done_since.setdefault(job.key, time.monotonic())
                if time.monotonic() - first >= FINAL_GRACE_S or answer.error:
                    self._tracked.pop(job.key, None)
        return answer

    # -- actions ------------------------------------------------------------------------------

    def tracked(
        self, remote_folder: str, job_id: str, num_tasks: int = 1, read_only: bool = False
    ) -> Tracked:
        """The :class:`Tracked` of a job of ``remote_folder`` (its copy's paths here)."""
        copy = mirror_folder(self.remote.connection.identity, remote_folder)
        paths = JobPaths.create(copy, job_id)
        return Tracked(JobKey(paths.folder, job_id), remote_folder, paths, num_tasks, read_only)

    def request_jobs(
        self, header: dict[str, Any], body: Iterable[Any] = ()
    ) -> tuple[dict[str, Any], list[Tracked]]:
        """One request whose answer describes jobs (``jobs``: a submission, an action): their
        copies are brought up to date, their answers remembered."""
        made: list[Tracked] = []

        def receive(answer: dict[str, Any], reader: Reader) -> None:
            for entry in answer.get("jobs") or []:
                tasks = int((entry.get("info") or {}).get("num_tasks", 1))
                job = self.tracked(str(entry["folder"]), str(entry["id"]), tasks)
                self.take(job, entry, reader)
                made.append(job)

        self.expire()
        answer = self.remote.request(header, body, receive)
        return answer, made

    def act(self, job: Tracked, op: str, **fields: Any) -> tuple[dict[str, Any], list[Tracked]]:
        """The action ``op`` on a job there (``cancel``, ``interrupt``, ``resubmit``)."""
        header = {"op": op, **job.names(), **fields}
        return self.request_jobs(header)

    def fetch(self, job: Tracked, kind: str, target: Path, task: int = 0) -> None:
        """Copy a whole file of a job (``result`` of ``task``, ``submitted``) into ``target``,
        streamed (a result of several GB needs no memory)."""
        header = {"op": "fetch", "file": kind, "task": task, **job.names()}

        def receive(answer: dict[str, Any], reader: Reader) -> None:
            pending = PendingFile.beside(target)
            try:
                reader.body(int(answer.get("body", 0)), pending.write)
            except BaseException:
                pending.discard()
                raise
            pending.commit(target, durable=False)
            stamp_copy(target, answer.get("stamp"))

        self.remote.request(header, receive=receive)

    def descriptor(self, remote_folder: str) -> dict[str, str]:
        """Where the jobs of ``remote_folder`` really are (``JobInfo.remote``)."""
        remote = self.remote
        return {"target": remote.target.url, "python": remote.python, "folder": remote_folder}

    def ask_safely(self, jobs: Iterable[Tracked], only_stale: bool = True) -> None:
        """:meth:`refresh`, with an unreachable cluster kept in :attr:`problem` (the views
        then show the last answers). While the cluster is away, the next try runs in the
        background: a connection attempt may wait for ``ConnectTimeout``, and the watcher
        that called has other jobs to show meanwhile."""
        wanted = list(jobs)
        if self.remote.last_error is None:
            with contextlib.suppress(RemoteUnreachable):
                self.refresh(wanted, only_stale)
            return
        with self._state_lock:
            if self._retrying is not None and self._retrying.is_alive():
                return
            self._retrying = threading.Thread(
                target=self._retry, args=(wanted,), name="jupyter_slurm_ckpt-ssh-retry",
                daemon=True,
            )  # fmt: skip
            self._retrying.start()

    def _retry(self, jobs: list[Tracked]) -> None:
        with contextlib.suppress(Exception):  # kept in remote.last_error; tried again later
            self.refresh(jobs, only_stale=False)


def _policy() -> dict[str, float]:
    """This process's Slurm polling cadence (``SchedulerPolling``), for the remote side."""
    policy = SLURM_STATES.policy
    return {"pending_s": policy.pending_s, "liveness_s": policy.liveness_s}


_states: dict[tuple[str, str], RemoteStates] = {}
_states_lock = threading.Lock()


def states_of(remote: Remote) -> RemoteStates:
    """The :class:`RemoteStates` of ``remote`` (one per cluster and remote Python, shared by
    every job there)."""
    key = (remote.target.url, remote.python)
    with _states_lock:
        states = _states.get(key)
        if states is None:
            states = _states[key] = RemoteStates(remote)
        return states
