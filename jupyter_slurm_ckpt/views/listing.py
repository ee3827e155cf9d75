"""``%slurm_jobs``: every job of a job folder, re-attached, shown as one table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..core.files import check_folder_is_safe
from ..core.job import Job
from ..core.paths import JobPaths
from .html import escape, render_table_html
from .status import JobStatus, collect_status, job_labels
from .text import render_table_text


class JobTable(Mapping[str, Job[Any]]):
    """Every job of a job folder, re-attached: ``table["L3"]`` is a live ``Job``.

    Its keys are the jobs' ids; where an id repeats (``L1`` of two subfolders: local ids start
    again in every folder), the subfolder's name comes first (``table["k1/L1"]``), and the id
    alone is refused with the choices. Shows as a table (state, elapsed time, requeues, outcome:
    the widget's own rendering) in a notebook and in a terminal. A job whose files cannot be
    read is listed with the reason instead of breaking the listing.
    """

    def __init__(
        self,
        folder: Path,
        jobs: dict[str, Job[Any]],
        statuses: list[JobStatus],
        unreadable: dict[str, str],
    ) -> None:
        self.folder = folder
        self.statuses = statuses
        self.unreadable = unreadable
        self._jobs = jobs

    def __getitem__(self, label: object) -> Job[Any]:
        if str(label) in self._jobs:
            return self._jobs[str(label)]
        same_id = [key for key, job in self._jobs.items() if job.job_id == str(label)]
        if len(same_id) > 1:
            choices = ", ".join(repr(key) for key in same_id)
            raise KeyError(
                f"job {label!r} is in {len(same_id)} folders of {self.folder}: ask for one of "
                f"{choices}"
            )
        known = ", ".join(self._jobs) or "none"
        raise KeyError(f"no job {label!r} in {self.folder} (jobs: {known})")

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __repr__(self) -> str:
        if not self.statuses and not self.unreadable:
            return f"no jobs in {self.folder}"
        lines = [f"job folder {self.folder}", render_table_text(self.statuses)]
        lines += [f"  {name:<10} unreadable: {why}" for name, why in self.unreadable.items()]
        lines += [f"  {name:<10} problem: {why}" for name, why in self._problems().items()]
        return "\n".join(lines)

    def _problems(self) -> dict[str, str]:
        """Jobs that are listed but whose files are partly damaged (e.g. events lines)."""
        return {label: s.problem for label, s in zip(self._jobs, self.statuses) if s.problem}

    def _repr_html_(self) -> str:
        folder = escape(str(self.folder))
        if not self.statuses and not self.unreadable:
            return f"<p>no jobs in <code>{folder}</code></p>"
        broken = "".join(
            f"<li><code>{escape(name)}</code> {kind}: {escape(why)}</li>"
            for kind, reasons in (("unreadable", self.unreadable), ("problem", self._problems()))
            for name, why in reasons.items()
        )
        return (
            f"<div>job folder <code>{folder}</code></div>"
            + render_table_html(self.statuses)
            + (f"<ul>{broken}</ul>" if broken else "")
        )


def list_jobs(folder: str | Path) -> JobTable:
    """Re-attach every job of ``folder`` (and of its ``%j``-style subfolders).

    Raises
    ------
    JobFolderError
        If ``folder`` belongs to another user or others can write to it (its pickles could be
        anyone's code); a ``%j`` subfolder like that is listed as unreadable.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.is_dir():
        check_folder_is_safe(folder)
    marker = f"*{JobPaths.INFO_SUFFIX}"
    found = [
        (path.parent, job_id)
        for path in sorted(folder.glob(marker)) + sorted(folder.glob(f"*/{marker}"))
        if (job_id := JobPaths.job_id_of(path.name)) is not None
    ]
    repeated = Counter(job_id for _, job_id in found)
    attached: list[tuple[float, Job[Any], JobStatus]] = []
    unreadable: dict[str, str] = {}
    for where, job_id in found:
        try:
            job: Job[Any] = Job(where, job_id)
            snapshot = collect_status(job, details=False)
            attached.append((job.info.submitted_at, job, snapshot))
        except Exception as error:  # one broken job must not hide the others
            name = job_id if repeated[job_id] == 1 else str(where.relative_to(folder) / job_id)
            unreadable[name] = f"{type(error).__name__}: {' '.join(str(error).split())}"
    attached.sort(key=lambda item: (item[0], item[1].job_id, str(item[1].paths.folder)))
    statuses = [snapshot for _, _, snapshot in attached]
    jobs = {label: job for label, (_, job, _) in zip(job_labels(statuses), attached)}
    return JobTable(folder, jobs, statuses, unreadable)
