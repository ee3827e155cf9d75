"""``%slurm_jobs``: every job of a job folder, re-attached, shown as one table.

A folder may hold thousands of jobs. They are found and told apart by the core's catalog
(``core.catalog``: one ``stat`` per job once read), and only the jobs the folder shows no end
of are asked about (one batched ``poll_states`` per backend). The table counts every job by
state and shows the newest ``limit`` of them; every job stays reachable by its name
(``table["L12"]``, re-attached when asked for) and through :meth:`JobTable.select`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import registry
from ..core.catalog import CATALOG, JobEntry, job_folders
from ..core.errors import JobFolderError
from ..core.files import check_folder_is_safe
from ..core.job import Job
from ..core.paths import JobKey
from ..core.states import attach, states_of
from .html import escape, table_html
from .status import JobStatus, collect_status, labels_of
from .text import counts_text, render_table_text

#: How many jobs a table shows by default (the newest); every job stays reachable by name.
SHOWN = 50


@dataclass(frozen=True)
class Listed:
    """One job of a listing: its catalog entry, its state now, and the name views give it."""

    entry: JobEntry
    state: str
    label: str


class JobTable(Mapping[str, Job[Any]]):
    """Every job of a job folder, re-attached: ``table["L3"]`` is a live ``Job``.

    Its keys are the jobs' ids; where an id repeats (``L1`` of two subfolders: local ids start
    again in every folder), the subfolder's name comes first (``table["k1/L1"]``), and the id
    alone is refused with the choices. Shows as a table (state, elapsed time, requeues, outcome:
    the widget's own rendering) in a notebook and in a terminal: how many jobs are in each
    state, and the newest ``limit`` of them. A job whose files cannot be read is listed with the
    reason instead of breaking the listing.

    Attributes
    ----------
    statuses
        The snapshots of the jobs shown, oldest first.
    unreadable
        Why each unreadable job cannot be read, by its name.
    counts
        How many of the (selected) jobs are in each state.
    """

    def __init__(
        self,
        folder: Path,
        listed: Sequence[Listed],
        unreadable: dict[str, str],
        jobs: dict[JobKey, Job[Any]],
        limit: int,
        selection: str = "",
    ) -> None:
        self.folder = folder
        self.limit = limit
        self.selection = selection
        self.unreadable = unreadable
        self._listed = {item.label: item for item in listed}  # oldest first
        self._jobs = jobs
        self.counts: Counter[str] = Counter(item.state for item in listed)
        self._shown = list(listed[-limit:]) if limit > 0 else []
        self.statuses = [self._snapshot(item) for item in self._shown]

    def __getitem__(self, label: object) -> Job[Any]:
        item = self._listed.get(str(label))
        if item is not None:
            return self._attach(item.entry)
        same_id = [key for key, item in self._listed.items() if item.entry.key.job_id == label]
        if len(same_id) > 1:
            choices = ", ".join(repr(key) for key in same_id)
            raise KeyError(
                f"job {label!r} is in {len(same_id)} folders of {self.folder}: ask for one of "
                f"{choices}"
            )
        raise KeyError(f"no job {label!r} in {self.folder} ({self._known()})")

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed)

    def __len__(self) -> int:
        return len(self._listed)

    def select(
        self,
        state: str | Iterable[str] | None = None,
        name: str | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> JobTable:
        """The jobs of the same folder that match (see :func:`list_jobs`), read again."""
        return list_jobs(
            self.folder, state=state, name=name, text=text,
            limit=self.limit if limit is None else limit,
        )  # fmt: skip

    def _known(self) -> str:
        names = list(self._listed)
        if len(names) > 20:
            return f"{len(names):,} jobs, e.g. {', '.join(names[-5:])}"
        return f"jobs: {', '.join(names) or 'none'}"

    def _attach(self, entry: JobEntry) -> Job[Any]:
        job = self._jobs.get(entry.key)
        if job is None:
            job = self._jobs[entry.key] = attach(entry)
        return job

    def _snapshot(self, item: Listed) -> JobStatus:
        job = self._attach(item.entry)
        try:
            return collect_status(job, item.state, details=False)
        except Exception as error:  # e.g. removed meanwhile: say so in its row
            return JobStatus(
                job.job_id, item.entry.name, item.entry.cluster, item.state,
                folder=str(item.entry.key.folder), problem=f"{type(error).__name__}: {error}",
            )  # fmt: skip

    def _summary(self) -> str:
        line = counts_text(self.counts)
        if self.selection:
            line += f" ({self.selection})"
        hidden = len(self._listed) - len(self._shown)
        if hidden > 0:
            line += (
                f"; the newest {len(self._shown)} shown, {hidden:,} more: "
                "slurm_jobs.select(state=..., name=..., text=..., limit=...) or "
                "%slurm_jobs --state S --name N --limit N"
            )
        return line

    def __repr__(self) -> str:
        if not self._listed and not self.unreadable:
            return f"no jobs in {self.folder}" + (f" ({self.selection})" if self.selection else "")
        labels = [item.label for item in self._shown]
        table = render_table_text(self.statuses, labels, self._summary())
        lines = [f"job folder {self.folder}", table]
        lines += [f"  {name:<10} unreadable: {why}" for name, why in self.unreadable.items()]
        lines += [f"  {name:<10} problem: {why}" for name, why in self._problems().items()]
        return "\n".join(lines)

    def _problems(self) -> dict[str, str]:
        """Shown jobs whose files are partly damaged (e.g. events lines)."""
        return {
            item.label: status.problem
            for item, status in zip(self._shown, self.statuses)
            if status.problem
        }

    def _repr_html_(self) -> str:
        folder = escape(str(self.folder))
        if not self._listed and not self.unreadable:
            return f"<p>no jobs in <code>{folder}</code></p>"
        broken = "".join(
            f"<li><code>{escape(name)}</code> {kind}: {escape(why)}</li>"
            for kind, reasons in (("unreadable", self.unreadable), ("problem", self._problems()))
            for name, why in reasons.items()
        )
        labels = [item.label for item in self._shown]
        return (
            f"<div>job folder <code>{folder}</code></div>"
            f"<div class='jsc-jobs'><div>{escape(self._summary())}</div>"
            f"{table_html(self.statuses, labels)}</div>" + (f"<ul>{broken}</ul>" if broken else "")
        )


def list_jobs(
    folder: str | Path,
    *,
    state: str | Iterable[str] | None = None,
    name: str | None = None,
    text: str | None = None,
    limit: int = SHOWN,
) -> JobTable:
    """Re-attach every job of ``folder`` (and of its ``%j``-style subfolders).

    Parameters
    ----------
    folder
        The job folder.
    state
        Only jobs in this state (or these states: ``"FAILED,TIMEOUT"`` or a list).
    name
        Only jobs whose name contains this (case ignored).
    text
        Only jobs with this id (or of this array), or whose name, state or folder contains
        this (case ignored).
    limit
        How many jobs the table shows, the newest (all stay reachable by name).

    Raises
    ------
    JobFolderError
        If ``folder`` belongs to another user or others can write to it (its pickles could be
        anyone's code); a ``%j`` subfolder like that is listed as unreadable.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.is_dir():
        check_folder_is_safe(folder)
    entries = list(reversed(CATALOG.jobs(job_folders(folder))))  # oldest first
    labels = labels_of([(entry.key.folder, entry.key.job_id) for entry in entries])
    problems = unreadable_reasons(entries)
    readable = [entry for entry in entries if entry.key not in problems]
    jobs, states = states_of(readable)
    wanted = JobFilter.of(state, name, text)
    listed, unreadable = [], {}
    for entry, label in zip(entries, labels):
        if entry.key in problems:
            if wanted.matches(entry, "UNKNOWN", folder):
                unreadable[label] = problems[entry.key]
            continue
        item = Listed(entry, states.get(entry.key, "UNKNOWN"), label)
        if wanted.matches(entry, item.state, folder):
            listed.append(item)
    return JobTable(folder, listed, unreadable, jobs, limit, wanted.describe())


def unreadable_reasons(entries: Iterable[JobEntry]) -> dict[JobKey, str]:
    """Why jobs cannot be read, for those that cannot: a damaged description, a backend not
    installed, or a folder others could write to (its pickles could be anyone's code)."""
    reasons: dict[JobKey, str] = {}
    unsafe: dict[Path, str | None] = {}
    for entry in entries:
        folder = entry.key.folder
        if folder not in unsafe:
            unsafe[folder] = _unsafe_reason(folder)
        reason = entry.problem or unsafe[folder]
        if reason is None:
            try:
                registry.job_class(entry.cluster)
            except JobFolderError as error:
                reason = f"JobFolderError: {error}"
        if reason is not None:
            reasons[entry.key] = reason
    return reasons


def _unsafe_reason(folder: Path) -> str | None:
    try:
        check_folder_is_safe(folder)
    except (JobFolderError, OSError) as error:
        return f"{type(error).__name__}: {' '.join(str(error).split())}"
    return None


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing keeps: by state, by name, by any text (case ignored)."""

    states: frozenset[str] = frozenset()
    name: str = ""
    text: str = ""

    @classmethod
    def of(cls, state: str | Iterable[str] | None, name: str | None, text: str | None) -> JobFilter:
        """The filter of these arguments (a state list may be one comma-separated string)."""
        words = state.split(",") if isinstance(state, str) else list(state or ())
        states = frozenset(word.strip().upper() for word in words if word.strip())
        return cls(states, (name or "").strip().lower(), (text or "").strip().lower())

    def matches(self, entry: JobEntry, state: str, base: Path | None = None) -> bool:
        """Whether the job passes (``base``: where folder names are relative to). The text
        matches a job's id (``L12``, or ``L12`` for every element of that array), or a part of
        its name, state or folder."""
        if self.states and state.upper() not in self.states:
            return False
        if self.name and self.name not in entry.name.lower():
            return False
        if not self.text:
            return True
        job_id = entry.key.job_id.lower()
        if job_id == self.text or job_id.partition("_")[0] == self.text:
            return True
        folder = str(entry.key.folder)
        if base is not None:
            folder = os.path.relpath(folder, base)
        return self.text in f"{entry.name}\n{state}\n{folder}".lower()

    def describe(self) -> str:
        """'state FAILED, name "train"' (empty without a filter)."""
        parts = []
        if self.states:
            parts.append(f"state {' or '.join(sorted(self.states))}")
        if self.name:
            parts.append(f"name contains {self.name!r}")
        if self.text:
            parts.append(f"matching {self.text!r}")
        return ", ".join(parts)
