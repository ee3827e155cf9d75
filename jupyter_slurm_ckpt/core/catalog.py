"""The jobs of job folders, read cheaply and kept up to date: where a listing of thousands of
jobs starts (``%slurm_jobs``, the sidebar, :func:`~jupyter_slurm_ckpt.clean`).

A folder's jobs are its marker files (``<id>_job.json``); it is listed again only when its
mtime moves (a file was created, renamed or removed in it). Each job's description and event
log are read once, and the log again only when it changed (size or mtime): what a job
writes shows at the next look, and a folder of 10,000 ended jobs costs a ``stat`` per job.
An entry holds what the folder alone tells: the job's name, backend, submission time, and,
once the folder proves it, how and when it ended. Nothing is unpickled and no backend is
asked: a job the folder shows no end of is *open*, and only its backend can tell whether it
still lives (``Job.state``, ``Job.poll_states``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import JobFolderError
from .events import TERMINAL_EVENTS, EventReader, is_valid_event, recorded_end
from .info import JobInfo
from .paths import JobKey, JobPaths


@dataclass(frozen=True)
class JobEntry:
    """One job as its folder tells it (see the module docstring).

    Attributes
    ----------
    key
        The job's folder and id.
    submitted_at
        When the job was submitted (its description's time; else its marker's mtime).
    final_state
        The end the folder proves (COMPLETED, FAILED, CANCELLED, TIMEOUT...); None while it
        proves none: the job may still live.
    ended_at
        When that end was recorded.
    problem
        Why the job's description cannot be read (the job is listed as unreadable).
    """

    key: JobKey
    name: str
    cluster: str
    submitted_at: float
    num_tasks: int = 1
    final_state: str | None = None
    ended_at: float | None = None
    problem: str | None = None

    @property
    def open(self) -> bool:
        """Whether only the job's backend can tell its state (the folder shows no end)."""
        return self.final_state is None and self.problem is None


def job_ids_in(folder: Path) -> list[str]:
    """Ids of the jobs whose marker file is in ``folder`` (not recursive)."""
    return list(_markers(folder, {}))


def _markers(folder: Path, known: dict[str, float]) -> dict[str, float]:
    """The jobs of ``folder`` and when their marker was written (at submission: it is never
    rewritten), ``known`` ones not looked at again."""
    found: dict[str, float] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                job_id = JobPaths.job_id_of(entry.name)
                if job_id is None or not entry.is_file(follow_symlinks=False):
                    continue
                mark = known.get(job_id)
                if mark is None:
                    with contextlib.suppress(OSError):
                        mark = entry.stat(follow_symlinks=False).st_mtime
                found[job_id] = mark or 0.0
    except OSError:
        return {}
    return found


def job_folders(root: Path) -> list[Path]:
    """A job folder and its subfolders (``%j`` job folders), links not followed, hidden
    ones (``.git``...) left out: where ``%slurm_jobs`` and ``clean`` look for jobs."""
    try:
        with os.scandir(root) as entries:
            below = [
                Path(entry.path)
                for entry in entries
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")
            ]
    except OSError:
        below = []
    return [root, *below]


@dataclass
class _Cached:
    entry: JobEntry
    signature: tuple[int, int] | None  # the events file's (size, mtime_ns) when read
    listing: int  # the folder's listing it was checked against
    #: An open job's events, read incrementally (a long run appends many progress events);
    #: an ended job keeps none.
    reader: EventReader | None = None


@dataclass
class _Folder:
    mtime_ns: int = -1
    listing: int = 0  # how many times the folder was listed
    marks: dict[str, float] = field(default_factory=dict)  # job id -> its marker's mtime
    jobs: dict[str, _Cached] = field(default_factory=dict)  # the jobs read so far


class JobCatalog:
    """The jobs of some job folders, kept up to date incrementally (see the module docstring).

    One catalog serves many calls. An open job's events file is looked at (``stat``) at each
    call; an ended job's, or an unreadable one's, only when its folder's listing changed
    (files are created, renamed or removed there: a description rewritten, a job removed).
    Safe to share between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, _Folder] = {}
        self._listings = 0  # folder listings that changed so far
        self._orders: dict[tuple[Path, ...], tuple[int, list[JobKey]]] = {}

    def order(self, folders: Iterable[Path]) -> list[JobKey]:
        """The jobs of ``folders``, newest first (by when their marker file was written, at
        submission; then by id), without reading them: a ``stat`` per new job, and of each
        folder."""
        scope = tuple(folders)
        with self._lock:
            listings = [(folder, self._folder(folder).marks) for folder in scope]
            cached = self._orders.get(scope)
            if cached is not None and cached[0] == self._listings:
                return cached[1]
            marked = [
                (mark, job_id, folder)
                for folder, marks in listings
                for job_id, mark in marks.items()
            ]
            marked.sort(reverse=True)
            keys = [JobKey(folder, job_id) for _, job_id, folder in marked]
            if len(self._orders) >= _MAX_SCOPES:
                self._orders.pop(next(iter(self._orders)))
            self._orders[scope] = (self._listings, keys)
        return keys

    def entries(self, keys: Iterable[JobKey]) -> list[JobEntry]:
        """The entries of these jobs, in their order (a job read again if its events changed)."""
        looked: dict[Path, _Folder] = {}  # each folder looked at once
        found = []
        with self._lock:
            for key in keys:
                known = looked.get(key.folder)
                if known is None:
                    known = looked[key.folder] = self._folder(key.folder)
                found.append(self._entry(known, key.folder, key.job_id))
        return found

    def jobs(self, folders: Iterable[Path]) -> list[JobEntry]:
        """Every job of ``folders``, newest first (see :meth:`order`)."""
        return self.entries(self.order(folders))

    def keys(self, folders: Iterable[Path]) -> list[JobKey]:
        """The jobs of ``folders``, in no particular order."""
        with self._lock:
            return [
                JobKey(folder, job_id)
                for folder in folders
                for job_id in self._folder(folder).marks
            ]

    def read_all(self, keys: Iterable[JobKey]) -> bool:
        """Whether every one of these jobs was read already (its entry is cached)."""
        with self._lock:
            for key in keys:
                known = self._folders.get(key.folder)
                if known is None or key.job_id not in known.jobs:
                    return False
        return True

    def forget(self, keys: Iterable[JobKey]) -> None:
        """Drop what is cached of these jobs (their files were removed)."""
        with self._lock:
            for key in keys:
                known = self._folders.get(key.folder)
                if known is not None:
                    known.mtime_ns = -1  # listed again at the next look
                    known.jobs.pop(key.job_id, None)

    def _folder(self, folder: Path) -> _Folder:
        try:
            mtime_ns = os.stat(folder).st_mtime_ns
        except OSError:
            if self._folders.pop(folder, None) is not None:
                self._listings += 1
            return _Folder()
        known = self._folders.setdefault(folder, _Folder())
        if known.mtime_ns != mtime_ns:
            marks = _markers(folder, known.marks)
            if marks.keys() != known.marks.keys():
                self._listings += 1
            known.marks = marks
            known.jobs = {job_id: known.jobs[job_id] for job_id in marks if job_id in known.jobs}
            known.mtime_ns = mtime_ns
            known.listing += 1
        return known

    def _entry(self, known: _Folder, folder: Path, job_id: str) -> JobEntry:
        cached = known.jobs.get(job_id)
        if cached is not None and not cached.entry.open and cached.listing == known.listing:
            return cached.entry  # ended (or unreadable), and nothing was renamed there since
        prefix = f"{folder}{os.sep}{job_id}_"
        signature = file_signature(prefix + EVENTS_SUFFIX)
        if cached is not None and cached.signature == signature and cached.entry.problem is None:
            cached.listing = known.listing
            return cached.entry
        if cached is None or cached.entry.problem is not None:
            described = read_description(JobKey(folder, job_id), prefix + INFO_SUFFIX)
        else:
            described = cached.entry
        if described.problem is not None:
            known.jobs[job_id] = _Cached(described, signature, known.listing)
            return described
        reader = cached.reader if cached is not None else None
        if reader is not None:
            events: Iterable[dict[str, Any]] = reader.read()
        else:
            events = terminal_events(prefix + EVENTS_SUFFIX)
        entry = with_end(described, events)
        if entry.open and reader is None:  # followed from now on, incrementally
            reader = EventReader(Path(prefix + EVENTS_SUFFIX))
            reader.read()
        kept = reader if entry.open else None
        known.jobs[job_id] = _Cached(entry, signature, known.listing, kept)
        return entry


#: Sorted listings kept for distinct folder selections.
_MAX_SCOPES = 16
#: The catalog of this process (``%slurm_jobs`` and ``clean`` share it).
CATALOG = JobCatalog()
#: The ends of a job's file names the catalog reads (see ``JobPaths``).
INFO_SUFFIX = JobPaths.INFO_SUFFIX.lstrip("_")
EVENTS_SUFFIX = "events.jsonl"


def read_description(key: JobKey, path: str) -> JobEntry:
    """A job's entry as its description tells it (no end yet), or why it cannot be read."""
    try:
        info = JobInfo.read_fields(path)
        return JobEntry(
            key,
            str(info.get("name", "job")),
            str(info["cluster"]),
            float(info.get("submitted_at") or _mtime(path)),
            int(info.get("num_tasks", 1)),
        )
    except (JobFolderError, OSError, TypeError, ValueError) as error:
        problem = f"{type(error).__name__}: {' '.join(str(error).split())}"
        return JobEntry(key, key.job_id, "?", _mtime(path), problem=problem)


def with_end(entry: JobEntry, events: Iterable[dict[str, Any]]) -> JobEntry:
    """``entry`` with the end its ``events`` prove (see :func:`recorded_end`)."""
    end = recorded_end(events, entry.num_tasks)
    final_state, ended_at = end if end is not None else (None, None)
    return replace(entry, final_state=final_state, ended_at=ended_at)


#: The events an end is read from: the ends, and those that begin a run (``last_run``).
_END_EVENTS = (*TERMINAL_EVENTS, "started", "requeued")
_END_WORDS = tuple(f'"{name}"'.encode() for name in _END_EVENTS)


def terminal_events(path: str) -> list[dict[str, Any]]:
    """The well-formed events of a log that :func:`recorded_end` reads: the ends and the run
    beginnings (one read; only their lines are parsed)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return []
    found = []
    for raw in data[: data.rfind(b"\n") + 1].splitlines():
        if not any(word in raw for word in _END_WORDS):
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if is_valid_event(record) and record["event"] in _END_EVENTS:
            found.append(record)
    return found


def file_signature(path: str | Path) -> tuple[int, int] | None:
    """A file's (size, mtime in ns), None when it does not exist: it moves when it changes."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
