"""``clean``: remove the files of old jobs, never of a job that may still run.

A job is removed only when all of these hold, checked in this order:

- its folder proves its end (``catalog.recorded_end``): a job whose folder records no end is
  live, whatever its backend says (a local job waiting for a slot, a Slurm job not started);
- that end is one of the ``states`` asked for, and older than ``older_than``;
- its backend no longer holds it (``Job.held_by_backend``: Slurm's queue, asked once);
- with its removal guard held (``Job._removal_guard``: the local job's lock, which every
  process of the job holds while it lives, so none can start meanwhile) and the events file
  locked (as a resubmission locks it), its end is read again, then its files go.

A local job whose processes all died without recording an end (SIGKILL, the OOM killer) is
asked about first: its re-attached job records that end (at its last sign of life), so it is
cleaned like the others. The job's marker file goes first (no listing shows a job half
removed), then its other files by their exact names (``JobPaths``), then an array's batch
script and launcher files once no element of the array is left, then a ``%j`` subfolder left empty.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .catalog import CATALOG, JobCatalog, JobEntry, job_folders, recorded_end, terminal_events
from .files import (
    PENDING_NAME,
    TEMP_PREFIX,
    check_folder_is_safe,
    exclusive_lock,
    temporary_names,
)
from .job import FINAL_STATES, Job
from .paths import JobKey, JobPaths, is_valid_job_id
from .payload import format_size
from .states import attach, states_of

#: How long a submission's unnamed file stays untouched before it counts as abandoned.
ABANDONED_AFTER_S = 3600.0


@dataclass
class CleanReport:
    """What :func:`clean` removed (or, with ``dry_run``, would remove), and what it kept.

    Attributes
    ----------
    removed
        The jobs whose files were removed.
    kept
        Jobs that matched but were left alone, with why (their backend still holds them...).
    bytes
        The disk space the removal frees: a file with several names (the payload an array's
        elements share) counts once, and only when its last name goes.
    abandoned_files
        Files of submissions that a killed submitter left without a name (on filesystems
        without unnamed files, such as NFS), untouched for :data:`ABANDONED_AFTER_S`.
    """

    removed: list[JobKey] = field(default_factory=list)
    kept: dict[JobKey, str] = field(default_factory=dict)
    bytes: int = 0
    dry_run: bool = False
    abandoned_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-friendly data (the sidebar's answer)."""
        return {
            "removed": len(self.removed),
            "bytes": self.bytes,
            "dry_run": self.dry_run,
            "abandoned_files": self.abandoned_files,
            "kept": [
                {"id": key.job_id, "folder": str(key.folder), "why": why}
                for key, why in self.kept.items()
            ],
        }

    def __repr__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        line = f"{verb} {len(self.removed):,} jobs ({format_size(self.bytes)})"
        if self.abandoned_files:
            line += f" and {self.abandoned_files:,} abandoned submission files"
        if self.kept:
            kept = "; ".join(f"{key.job_id}: {why}" for key, why in list(self.kept.items())[:5])
            more = f" (and {len(self.kept) - 5} more)" if len(self.kept) > 5 else ""
            line += f"; kept {len(self.kept):,} that matched: {kept}{more}"
        return line


def clean(
    folder: str | Path,
    *,
    older_than: timedelta | float = 0.0,
    states: str | Iterable[str] | None = None,
    dry_run: bool = False,
) -> CleanReport:
    """Remove the files of the jobs of ``folder`` (and of its ``%j`` subfolders) that ended
    long enough ago; never those of a job that may still run (see the module docstring).

    Parameters
    ----------
    folder
        The job folder.
    older_than
        Only jobs that ended at least this long ago (a ``timedelta``, or seconds).
    states
        Only jobs that ended in these states (``"FAILED,CANCELLED"`` or a list); default
        every end: COMPLETED, FAILED, CANCELLED, TIMEOUT...
    dry_run
        Report what would be removed, remove nothing.

    Raises
    ------
    ValueError
        For a state that is not an end (RUNNING, PENDING...): those jobs are never removed.
    JobFolderError
        If the folder belongs to another user or others can write to it.
    """
    root = Path(folder).expanduser().absolute()
    check_folder_is_safe(root)
    return clean_folders(
        job_folders(root), older_than=older_than, states=states, dry_run=dry_run
    )


def clean_folders(
    folders: Sequence[Path],
    *,
    older_than: timedelta | float = 0.0,
    states: str | Iterable[str] | None = None,
    dry_run: bool = False,
    catalog: JobCatalog = CATALOG,
) -> CleanReport:
    """:func:`clean` over these job folders (a ``%j`` folder, named by its job's id, that
    ends up empty is removed too)."""
    wanted = _end_states(states)
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if seconds < 0:
        raise ValueError(f"older_than must be 0 or more, not {older_than}")
    cutoff = time.time() - float(seconds)
    report = CleanReport(dry_run=dry_run)
    freed = _FreedSpace()
    safe = [folder for folder in folders if _safe(folder, report, catalog)]
    entries = _with_lost_ends(catalog.jobs(safe), catalog)
    candidates = [
        entry
        for entry in entries
        if entry.final_state in wanted and (not seconds or (entry.ended_at or 0.0) <= cutoff)
    ]
    jobs = _attached(candidates, report)
    held = _held(jobs.values())
    temporaries = {
        folder: _temporaries(folder, {key.job_id for key in catalog.keys([folder])})
        for folder in {key.folder for key in jobs}
    }
    for key, job in jobs.items():
        if key in held:
            report.kept[key] = held[key]
        else:
            _remove(job, report, dry_run, temporaries[key.folder], freed)
    for folder in safe:
        _remove_abandoned_submissions(folder, report, dry_run, freed)
    if not dry_run:
        catalog.forget(report.removed)
        _remove_unused_scripts_and_folders(report.removed)
    return report


def _end_states(states: str | Iterable[str] | None) -> frozenset[str]:
    if states is None:
        return frozenset(FINAL_STATES)
    words = states.split(",") if isinstance(states, str) else list(states)
    wanted = frozenset(word.strip().upper() for word in words if word.strip())
    live = sorted(wanted - FINAL_STATES)
    if live:
        raise ValueError(
            f"{', '.join(live)} {'is' if len(live) == 1 else 'are'} not an end state: clean() "
            f"removes only jobs that ended ({', '.join(sorted(FINAL_STATES))})"
        )
    return wanted


def _safe(folder: Path, report: CleanReport, catalog: JobCatalog) -> bool:
    try:
        check_folder_is_safe(folder)
    except Exception as error:
        for key in catalog.keys([folder]):
            report.kept[key] = f"{type(error).__name__}: {error}"
        return False
    return True


def _with_lost_ends(entries: list[JobEntry], catalog: JobCatalog) -> list[JobEntry]:
    """The entries, after asking the backends about the jobs whose folder shows no end: a
    job they find dead records its end (a local job killed without a word)."""
    open_entries = [entry for entry in entries if entry.open]
    if not open_entries:
        return entries
    states_of(open_entries)  # re-attached jobs record the ends they find
    fresh = {entry.key: entry for entry in catalog.entries([e.key for e in open_entries])}
    return [fresh.get(entry.key, entry) for entry in entries]


def _attached(entries: list[JobEntry], report: CleanReport) -> dict[JobKey, Job[Any]]:
    jobs: dict[JobKey, Job[Any]] = {}
    for entry in entries:
        try:
            jobs[entry.key] = attach(entry)
        except Exception as error:
            report.kept[entry.key] = f"{type(error).__name__}: {error}"
    return jobs


def _held(jobs: Iterable[Job[Any]]) -> dict[JobKey, str]:
    """The jobs their backends still hold (one question per backend), with why."""
    groups: dict[type[Job[Any]], list[Job[Any]]] = {}
    for job in jobs:
        groups.setdefault(type(job), []).append(job)
    held: dict[JobKey, str] = {}
    for cls, group in groups.items():
        try:
            held.update(cls.held_by_backend(group))
        except Exception as error:  # cannot tell: keep them all
            held.update({job.key: f"{cls.cluster} cannot tell ({error})" for job in group})
    return held


def _remove(
    job: Job[Any],
    report: CleanReport,
    dry_run: bool,
    temporaries: dict[str, list[Path]],
    freed: _FreedSpace,
) -> None:
    paths = job.paths
    with job._removal_guard() as free:
        if not free:
            report.kept[job.key] = "a process of the job still runs"
            return
        with exclusive_lock(paths.events):  # a resubmission reading it waits, and vice versa
            if recorded_end(terminal_events(str(paths.events)), job.num_tasks) is None:
                report.kept[job.key] = "its end is no longer recorded"
                return
            files = [path for path in job_files(paths, job.num_tasks) if path.exists()]
            files += temporaries.get(paths.job_id, [])
            report.bytes += sum(freed.by_removing(path) for path in files)
            report.removed.append(job.key)
            if dry_run:
                return
            for path in files:  # the marker first: no listing shows a job half removed
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _temporaries(folder: Path, job_ids: set[str]) -> dict[str, list[Path]]:
    """The temporaries killed writers left in the folder (``.tmp-<file name>.<random>``), by
    the job of ``job_ids`` whose file they were to become: one look at the folder, not one
    per job. (``L7_3_...`` is job L7's or element L7_3's: a folder never holds both.)"""
    found: dict[str, list[Path]] = {}
    for name in temporary_names(folder):
        parts = name[len(TEMP_PREFIX) :].split("_")
        for owner in ("_".join(parts[:2]), parts[0]):
            if owner in job_ids:
                found.setdefault(owner, []).append(folder / name)
                break
    return found


def _remove_abandoned_submissions(
    folder: Path, report: CleanReport, dry_run: bool, freed: _FreedSpace
) -> None:
    """Remove the files of submissions that never got a name: a submitter killed while it
    wrote one, on a filesystem without unnamed files (there, ``.tmp-pending.<random>``; a
    live submission writes or names its file within seconds)."""
    prefix = f"{TEMP_PREFIX}{PENDING_NAME}."
    cutoff = time.time() - ABANDONED_AFTER_S
    for name in temporary_names(folder):
        path = folder / name
        with contextlib.suppress(OSError):
            if name.startswith(prefix) and path.stat().st_mtime < cutoff:
                report.bytes += freed.by_removing(path)
                report.abandoned_files += 1
                if not dry_run:
                    path.unlink()


def job_files(paths: JobPaths, num_tasks: int) -> list[Path]:
    """Every file of one job, by its exact name, its marker first (the batch script, shared
    by an array's elements, is not among them)."""
    per_task = [
        path
        for task in range(num_tasks)
        for path in (
            paths.for_task(task).result_pickle,
            paths.for_task(task).stdout,
            paths.for_task(task).stderr,
        )
    ]
    own = [
        paths.submitted_pickle,
        paths.heartbeat,
        paths.signal_request,
        paths.local_process,
        paths.local_lock,
        paths.events,
    ]
    return [paths.info, *per_task, *own]


def _remove_unused_scripts_and_folders(removed: list[JobKey]) -> None:
    """The files of arrays no job of the folder belongs to any more (the batch script, the
    local launcher's record and lock), then ``%j`` folders (named by a job id) left empty."""
    for folder in {key.folder for key in removed}:
        roots = {key.job_id.partition("_")[0] for key in removed if key.folder == folder}
        with contextlib.suppress(OSError):
            remaining = {  # the jobs whose marker is still there
                job_id.partition("_")[0]
                for job_id in map(JobPaths.job_id_of, os.listdir(folder))
                if job_id is not None
            }
            for root in roots - remaining:
                array = JobPaths(folder, root)
                for path in (array.submission_file, array.local_process, array.local_lock):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        if is_valid_job_id(folder.name):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


class _FreedSpace:
    """The bytes a file's removal frees: its size once its last name is removed (an array's
    elements share their description and payload, hard links of one file), else nothing."""

    def __init__(self) -> None:
        #: Per file (device, inode): its names when first seen, and how many were removed.
        self._names: dict[tuple[int, int], list[int]] = {}

    def by_removing(self, path: Path) -> int:
        """Count ``path`` as removed (stat'ed before it is: a removed name lowers the link
        count, so the count at first sight is the one kept)."""
        try:
            stat = path.stat()
        except OSError:
            return 0
        names = self._names.setdefault((stat.st_dev, stat.st_ino), [stat.st_nlink, 0])
        names[1] += 1
        return stat.st_size if names[1] == names[0] else 0
