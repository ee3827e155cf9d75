"""``%slurm_jobs``: every job of a job folder, re-attached, shown as one table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..core.files import check_folder_is_safe
from ..core.job import Job
from ..core.paths import JobPaths
from .html import escape, render_table_html
from .status import JobStatus, collect_status
from .text import render_table_text


class JobTable(Mapping[str, Job[Any]]):
    """Every job of a job folder, re-attached: ``table["L3"]`` is a live ``Job``.

    Shows as a table (state, elapsed time, requeues, outcome: the widget's own rendering) in a
    notebook and in a terminal. A job whose files cannot be read is listed with the reason
    instead of breaking the listing.
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

    def __getitem__(self, job_id: object) -> Job[Any]:
        try:
            return self._jobs[str(job_id)]
        except KeyError:
            known = ", ".join(self._jobs) or "none"
            raise KeyError(f"no job {job_id!r} in {self.folder} (jobs: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __repr__(self) -> str:
        if not self.statuses and not self.unreadable:
            return f"no jobs in {self.folder}"
        lines = [f"job folder {self.folder}", render_table_text(self.statuses)]
        lines += [f"  {job_id:<10} unreadable: {why}" for job_id, why in self.unreadable.items()]
        lines += [f"  {job_id:<10} problem: {why}" for job_id, why in self._problems().items()]
        return "\n".join(lines)

    def _problems(self) -> dict[str, str]:
        """Jobs that are listed but whose files are partly damaged (e.g. events lines)."""
        return {s.job_id: s.problem for s in self.statuses if s.problem}

    def _repr_html_(self) -> str:
        folder = escape(str(self.folder))
        if not self.statuses and not self.unreadable:
            return f"<p>no jobs in <code>{folder}</code></p>"
        broken = "".join(
            f"<li><code>{escape(job_id)}</code> {kind}: {escape(why)}</li>"
            for kind, reasons in (("unreadable", self.unreadable), ("problem", self._problems()))
            for job_id, why in reasons.items()
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
    found = sorted(folder.glob(marker)) + sorted(folder.glob(f"*/{marker}"))
    attached: list[tuple[float, Job[Any], JobStatus]] = []
    unreadable: dict[str, str] = {}
    seen: set[str] = set()
    for info_path in found:
        job_id = JobPaths.job_id_of(info_path.name)
        if job_id is None or job_id in seen:
            continue
        seen.add(job_id)
        try:
            job: Job[Any] = Job(info_path.parent, job_id)
            snapshot = collect_status(job, details=False)
            attached.append((job.info.submitted_at, job, snapshot))
        except Exception as error:  # one broken job must not hide the others
            unreadable[job_id] = f"{type(error).__name__}: {' '.join(str(error).split())}"
    attached.sort(key=lambda item: (item[0], item[1].job_id))
    jobs = {job.job_id: job for _, job, _ in attached}
    return JobTable(folder, jobs, [snapshot for _, _, snapshot in attached], unreadable)
