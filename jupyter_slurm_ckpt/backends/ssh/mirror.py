"""The local copy of a job folder that lives on a cluster reached over SSH: its *mirror*.

The views read a job from its folder (events, the ends of its logs, its result, its
description). For a job on a cluster, that folder is on the cluster; this process keeps a copy
of what the views read, under the user's cache (``PackagePaths.ssh_mirror``: one folder per
account and remote folder, 0700), kept up to date by the one round trip of each refresh
(``sync``). A job of the cluster is named here by its mirror folder and its id (``job.key``).

What the copy holds, file by file (``JobPaths``' names):
- ``<id>_job.json``: the remote description, with ``cluster: ssh`` and where the job really is
  (``remote``: the host, the remote Python, the remote folder);
- ``<id>_events.jsonl``: byte for byte the remote file up to its last whole line (appended);
- ``<id>_<task>_log.out|err``: the end of each log (how far is copied: ``<id>_mirrored.json``);
- ``<id>_<task>_result.pkl``: a result, once fetched (small ones come with a refresh).

Several processes of the user (two kernels, the Jupyter server) may copy into the same mirror:
each job's copy is changed under an exclusive lock of its events file, and a piece of a file is
applied by its remote offset, so a piece that arrives twice is applied once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...core.files import (
    PRIVATE_FILE_MODE,
    atomic_write_bytes,
    atomic_write_text,
    ensure_private_folder,
    exclusive_lock,
)
from ...core.info import JobInfo
from ...core.paths import JobPaths, PackagePaths, template_root

#: A log's copy is cut back to its last :data:`LOG_KEEP_BYTES` once it passes this size.
LOG_MAX_BYTES = 1024 * 1024
LOG_KEEP_BYTES = 256 * 1024
#: Mirror folders this process made or checked (private, the user's own).
_CHECKED: set[Path] = set()


def cache_root() -> Path:
    """The user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def mirror_folder(identity: str, remote_folder: str) -> Path:
    """The local copy of the remote folder (template) ``remote_folder`` of ``identity``."""
    return PackagePaths.ssh_mirror(cache_root(), identity, remote_folder)


def ensure_mirror(folder: Path) -> Path:
    """Create the mirror folder's part before any ``%`` placeholder, private."""
    return ensure_private_folder(template_root(folder))


def log_name(task: int, stream: str) -> str:
    """How a log is named in requests and answers: ``0.out``, ``1.err``."""
    return f"{task}.{stream}"


def log_path(paths: JobPaths, name: str) -> Path:
    task, _, stream = name.partition(".")
    task_paths = paths.for_task(int(task))
    return task_paths.stdout if stream == "out" else task_paths.stderr


class MirroredJob:
    """One job's copy in the mirror: what it holds, and the pieces of the remote files that
    make it up to date."""

    def __init__(self, paths: JobPaths) -> None:
        self.paths = paths

    # -- what the copy holds (read without the lock: the request only says where to start) ----

    def events_size(self) -> int:
        try:
            return self.paths.events.stat().st_size
        except FileNotFoundError:
            return 0

    def log_ends(self) -> dict[str, int]:
        """How far each log is copied (remote offsets)."""
        try:
            ends = json.loads(self.paths.mirrored.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in ends.items()} if isinstance(ends, dict) else {}

    def has_info(self) -> bool:
        return self.paths.info.exists()

    def results_held(self, num_tasks: int) -> dict[str, int]:
        """The copied results, by task, each with the stamp of the remote file it copies (its
        modification time in ns): a result the cluster replaced (a new run's) is copied again."""
        held = {}
        for task in range(num_tasks):
            with contextlib.suppress(FileNotFoundError):
                held[str(task)] = self.paths.for_task(task).result_pickle.stat().st_mtime_ns
        return held

    def remove(self) -> None:
        """Drop the copy (the job is gone from the cluster): every file of it named here."""
        paths = self.paths
        try:
            tasks = JobInfo.read(paths.info).num_tasks
        except Exception:  # a broken copy: its first task's files at least
            tasks = 1
        files = [paths.info, paths.events, paths.mirrored, paths.submitted_pickle]
        for task in range(tasks):
            task_paths = paths.for_task(task)
            files += [task_paths.stdout, task_paths.stderr, task_paths.result_pickle]
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- bringing it up to date ---------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[MirrorUpdate]:
        """Change the copy (other processes wait); the log ends are saved at the end."""
        if self.paths.folder not in _CHECKED:  # once per folder and process
            ensure_private_folder(self.paths.folder)
            _CHECKED.add(self.paths.folder)
        with exclusive_lock(self.paths.events):
            update = MirrorUpdate(self)
            yield update
            update.save()


class MirrorUpdate:
    """The changes of one refresh to one job's copy, made under its lock."""

    def __init__(self, job: MirroredJob) -> None:
        self.job = job
        self.paths = job.paths
        self.ends = job.log_ends()
        self._ends_changed = False

    def info(self, remote_info: dict[str, Any], remote: dict[str, str]) -> None:
        """Write the description: the remote one, as a job of this backend with its mirror."""
        known = JobInfo.__dataclass_fields__
        info = JobInfo(**{k: v for k, v in remote_info.items() if k in known})
        info.cluster = "ssh"
        info.remote = dict(remote, folder=info.folder)
        info.folder = str(self.paths.folder)
        atomic_write_text(self.paths.info, json.dumps(asdict(info), indent=1, default=str))

    def events(self, start: int, data: bytes) -> None:
        """The remote events file from ``start``: append what the copy lacks."""
        size = self.job.events_size()
        if start > size or start + len(data) <= size:
            return  # already copied (by another process), or not where the copy ends
        _append(self.paths.events, memoryview(data)[size - start :])

    def result(self, task: int, data: bytes, stamp: int | None) -> None:
        """A task's result file, whole, with the stamp of the remote file."""
        path = self.paths.for_task(task).result_pickle
        atomic_write_bytes(path, data, durable=False)
        stamp_copy(path, stamp)

    def drop_stale_results(self, stamps: dict[str, int], num_tasks: int) -> None:
        """Remove the copied results that the cluster no longer holds, or holds anew (a task
        of a new run removes its last run's result, then writes its own)."""
        for task, stamp in self.job.results_held(num_tasks).items():
            if stamps.get(task) != stamp:
                with contextlib.suppress(FileNotFoundError):
                    self.paths.for_task(int(task)).result_pickle.unlink()

    def log(self, name: str, start: int, data: bytes) -> None:
        """A log's remote bytes from ``start``: appended where the copy ends, or, after a gap
        (the log grew faster than copied), instead of the copy."""
        path = log_path(self.paths, name)
        end = self.ends.get(name, 0) if path.exists() else 0
        if start > end:
            atomic_write_bytes(path, data, durable=False)
        elif start + len(data) > end:
            fresh = data[end - start :]
            size = path.stat().st_size if path.exists() else 0
            if size + len(fresh) > LOG_MAX_BYTES:
                kept = (path.read_bytes() + fresh)[-LOG_KEEP_BYTES:]
                atomic_write_bytes(path, kept, durable=False)
            else:
                _append(path, fresh)
        else:
            return
        self.ends[name] = max(end, start + len(data))
        self._ends_changed = True

    def save(self) -> None:
        if self._ends_changed:
            atomic_write_text(self.paths.mirrored, json.dumps(self.ends))


def _append(path: Path, data: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def stamp_copy(path: Path, stamp: int | None) -> None:
    """Give a copied file the stamp (modification time, ns) of the remote file it copies."""
    if stamp is not None:
        os.utime(path, ns=(stamp, stamp))
