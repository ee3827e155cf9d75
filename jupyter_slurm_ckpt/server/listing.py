"""The sidebar's job listing: a page of the jobs below the job roots, filtered, at any size.

Every job stays reachable: the listing is paged (``offset``, ``limit``) and filtered (state,
name, any text), never cut. The jobs are found and told apart by the core's catalog
(``core.catalog``): a folder is listed again only when its mtime moves, a job read again only
when its events change, so a refresh of 10,000 jobs costs little more than a ``stat`` per job
still running. Only the jobs the folder shows no end of are polled (one scheduler call per
backend), and the rows of ended jobs are kept once built.

A first request, before the catalog has read every job, is answered from the order alone
(marker files, a ``stat`` each): its page is read, and the rest is read right after it, in
the background; a filter or the per-state counts wait for that read.

Runs in the listing's worker thread (``jobs.JobService``), never on the server's event loop.
Jobs are opened ``read_only``: nothing is unpickled, removed or recorded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.catalog import JobCatalog, JobEntry
from ..core.errors import JobFolderError
from ..core.files import check_folder_is_safe
from ..core.job import Job
from ..core.paths import JobKey
from ..core.states import attach, states_of
from ..views.listing import JobFilter
from ..views.status import JobStatus, collect_status
from .config import SlurmJobsConfig
from .discovery import walk_job_folders

#: Listings kept for distinct folder selections (a client could ask for many).
MAX_SCOPES = 16
#: How many of the most frequent job names a page lists (for the sidebar's name filter).
MAX_NAMES = 50


@dataclass(frozen=True)
class PageQuery:
    """Which page of which jobs: ``limit`` jobs from ``offset`` of those that pass ``filter``."""

    offset: int = 0
    limit: int = 50
    filter: JobFilter = field(default_factory=JobFilter)


@dataclass
class _View:
    """One refresh of a scope: its jobs in order, and, once all were read, their entries and
    states."""

    at: float
    keys: list[JobKey]
    unsafe: dict[Path, str]
    partial: bool
    entries: dict[JobKey, JobEntry] | None = None
    states: dict[JobKey, str] = field(default_factory=dict)
    # Worked out once per refresh: the jobs that pass a filter, the counts, the names.
    matching: dict[JobFilter, list[JobKey]] = field(default_factory=dict)
    counts: dict[JobFilter, dict[str, int]] = field(default_factory=dict)
    names: list[tuple[str, int]] | None = None


@dataclass
class _Walk:
    at: float
    folders: list[Path]
    truncated: bool


class JobLister:
    """Pages of the jobs below the job roots (see the module docstring).

    Parameters
    ----------
    config
        The extension's settings.
    base
        Where folder names are relative to (the server's root_dir), for the text filter.
    schedule
        Runs a function later in the listing's worker thread (the background read).
    more_folders
        Job folders listed with a scope's own at each refresh (the mirrors of the job roots on
        clusters reached over SSH, brought up to date: ``remote.RemoteRoots``).
    """

    def __init__(
        self,
        config: SlurmJobsConfig,
        base: Path,
        schedule: Callable[[Callable[[], Any]], Any],
        more_folders: Callable[[tuple[Path, ...]], list[Path]] | None = None,
    ) -> None:
        self.config = config
        self.base = base
        self._more_folders = more_folders
        self.catalog = JobCatalog()
        self.refreshes = 0  # listing refreshes run so far (diagnostics and tests)
        self._schedule = schedule
        self._views: dict[tuple[Path, ...], _View] = {}
        self._walks: dict[tuple[Path, ...], _Walk] = {}
        self._jobs: dict[JobKey, Job[Any]] = {}  # read-only handles, kept between refreshes
        self._rows: dict[JobKey, tuple[JobEntry, dict[str, Any]]] = {}  # ended jobs' rows

    def invalidate(self) -> None:
        """Forget the refreshes (after an action: the next page shows its effect)."""
        self._views.clear()

    def folders(self, scope: tuple[Path, ...]) -> list[Path]:
        """The job folders below ``scope`` (the walk is reused ``discovery_interval_s``)."""
        return self._walk(scope).folders

    def page(self, scope: tuple[Path, ...], query: PageQuery) -> dict[str, Any]:
        """One page of the jobs below ``scope``, newest first, with how many pass the
        filter (``total``), how many there are (``all``), and, once every job was read, how
        many are in each state (``counts``) and the most frequent names (``names``)."""
        view = self._view(scope)
        if view.entries is None and (query.filter != JobFilter() or not query.limit):
            view = self._complete(scope, view)
        if view.entries is None:
            self._schedule(lambda: self._complete(scope, view))
            chosen = view.keys[query.offset : query.offset + query.limit]
            entries = dict(zip(chosen, self.catalog.entries(chosen)))
            states = self._states(entries, view.unsafe)
            total, counts, names = len(view.keys), None, None
        else:
            entries, states = view.entries, view.states
            matching = self._matching(query.filter, view)
            chosen = matching[query.offset : query.offset + query.limit]
            total = len(matching)
            counts, names = self._counts(query.filter, view)
        return {
            "jobs": [self._row(key, entries[key], states.get(key), view.unsafe) for key in chosen],
            "total": total,
            "offset": query.offset,
            "limit": query.limit,
            "all": len(view.keys),
            "counts": counts,
            "names": names,
            "partial": view.partial,
        }

    # -- refreshes ------------------------------------------------------------------------------

    def _view(self, scope: tuple[Path, ...]) -> _View:
        view = self._views.get(scope)
        if view is not None and time.monotonic() - view.at < self.config.min_poll_interval_s:
            return view
        self.refreshes += 1
        walk = self._walk(scope)
        folders = walk.folders
        if self._more_folders is not None:
            folders = [*folders, *self._more_folders(scope)]
        unsafe = {folder: why for folder in folders if (why := unsafe_reason(folder))}
        keys = self.catalog.order(folders)
        view = _View(time.monotonic(), keys, unsafe, walk.truncated)
        if self.catalog.read_all(keys):
            self._fill(view)
        if len(self._views) >= MAX_SCOPES:
            self._views.pop(next(iter(self._views)))
        self._views[scope] = view
        return view

    def _complete(self, scope: tuple[Path, ...], view: _View) -> _View:
        """Read every job of the view (the background read after a first page)."""
        if view.entries is None:
            self._fill(view)
        return view

    def _fill(self, view: _View) -> None:
        entries = dict(zip(view.keys, self.catalog.entries(view.keys)))
        view.states = self._states(entries, view.unsafe)
        view.entries = entries
        live = {key for key, entry in entries.items() if entry.open}
        for key in [key for key in self._jobs if key not in live]:
            del self._jobs[key]  # ended (its row is kept) or gone
        for key in [key for key in self._rows if key not in entries]:
            del self._rows[key]

    def _states(
        self, entries: dict[JobKey, JobEntry], unsafe: dict[Path, str]
    ) -> dict[JobKey, str]:
        """The jobs' states: their folder's end, else their backend's word (polled together;
        never for a job of a folder others can write to)."""
        readable = [
            entry
            for entry in entries.values()
            if entry.problem is None and entry.key.folder not in unsafe
        ]
        known = {entry.key: self._jobs[entry.key] for entry in readable if entry.key in self._jobs}
        jobs, states = states_of(readable, known, read_only=True)
        self._jobs.update(jobs)
        return states

    def _walk(self, scope: tuple[Path, ...]) -> _Walk:
        cached = self._walks.get(scope)
        if cached is None or time.monotonic() - cached.at >= self.config.discovery_interval_s:
            walk = walk_job_folders(
                scope, self.config.discovery_depth, self.config.discovery_max_folders
            )
            cached = _Walk(time.monotonic(), walk.folders, walk.truncated)
            if len(self._walks) >= MAX_SCOPES:
                self._walks.pop(next(iter(self._walks)))
            self._walks[scope] = cached
        return cached

    # -- filters and rows -----------------------------------------------------------------------

    def _matching(self, wanted: JobFilter, view: _View) -> list[JobKey]:
        """The jobs of the view that pass (worked out once per refresh and filter)."""
        if wanted == JobFilter():
            return view.keys
        found = view.matching.get(wanted)
        if found is None:
            entries, states = view.entries, view.states
            assert entries is not None
            found = [
                key
                for key in view.keys
                if wanted.matches(entries[key], states.get(key, "UNKNOWN"), self.base)
            ]
            if len(view.matching) >= MAX_SCOPES:
                view.matching.pop(next(iter(view.matching)))
            view.matching[wanted] = found
        return found

    def _counts(
        self, wanted: JobFilter, view: _View
    ) -> tuple[dict[str, int], list[tuple[str, int]]]:
        """Jobs by state among those that pass the filter but its states (the sidebar's state
        choices), and the most frequent names of all."""
        assert view.entries is not None
        others = JobFilter(frozenset(), wanted.name, wanted.text)
        if others not in view.counts:
            states = view.states
            counts = Counter(states.get(key, "UNKNOWN") for key in self._matching(others, view))
            view.counts[others] = dict(counts.most_common())
        if view.names is None:
            names = Counter(e.name for e in view.entries.values() if e.problem is None)
            view.names = names.most_common(MAX_NAMES)
        return view.counts[others], view.names

    def _row(
        self, key: JobKey, entry: JobEntry, state: str | None, unsafe: dict[Path, str]
    ) -> dict[str, Any]:
        """A job's row: the snapshot the widget shows (an ended job's, built once)."""
        row: dict[str, Any] = {"id": key.job_id, "folder": str(key.folder), "error": None}
        if key.folder in unsafe:  # never unpickle from a folder others can write to
            return {**broken_row(row), "error": unsafe[key.folder]}
        if entry.problem is not None:
            return {**broken_row(row), "error": entry.problem}
        cached = self._rows.get(key)
        if cached is not None and cached[0] is entry:
            return cached[1]
        try:
            job = self._jobs.get(key)
            if job is None:
                job = attach(entry, read_only=True)
            status = collect_status(job, state, details=False)
        except Exception as error:  # a corrupt job is shown as such, not a broken listing
            self._jobs.pop(key, None)
            return {**broken_row(row), "error": f"{type(error).__name__}: {error}"}
        row = {**row, **status_row(status)}
        if not entry.open:
            self._rows[key] = (entry, row)
        return row


def status_row(status: JobStatus) -> dict[str, Any]:
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


def broken_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row of a job that cannot be read (its ``error`` says why)."""
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


def unsafe_reason(folder: Path) -> str | None:
    """Why jobs of ``folder`` must not be read (owned by another user, writable by others),
    or None."""
    try:
        check_folder_is_safe(folder)
    except (JobFolderError, OSError) as error:
        return str(error)
    return None

