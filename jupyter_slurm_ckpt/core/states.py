"""The states of many jobs at once: one batched ``poll_states`` call per backend.

A listing of thousands of jobs asks the backends only about the jobs whose folder shows no end
(``catalog.JobEntry.open``), the watcher every job it watches once a tick, and the remote side
of the SSH backend every job a kernel asks about: Slurm answers them all from one scheduler
call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import registry
from .catalog import JobEntry
from .job import Job
from .paths import JobKey


def poll_all(jobs: Iterable[Job[Any]]) -> Mapping[JobKey, str]:
    """States of ``jobs`` by their :attr:`~Job.key`, from one ``poll_states`` call per backend
    (job class); a backend that raises leaves its jobs out (each job's own ``state`` then
    tells the real error)."""
    groups: dict[type[Job[Any]], list[Job[Any]]] = {}
    for job in jobs:
        groups.setdefault(type(job), []).append(job)
    states: dict[JobKey, str] = {}
    for cls, group in groups.items():
        with contextlib.suppress(Exception):
            states.update(cls.poll_states(group))
    return states


def attach(entry: JobEntry, read_only: bool = False) -> Job[Any]:
    """The job of a catalog entry, re-attached (its backend's class, from the entry), to
    read only if asked (``Job.read_only``).

    Raises
    ------
    JobFolderError
        If no backend of that name is installed.
    """
    job = registry.job_class(entry.cluster)(entry.key.folder, entry.key.job_id)
    job.read_only = read_only
    return job


def states_of(
    entries: Sequence[JobEntry],
    attached: Mapping[JobKey, Job[Any]] | None = None,
    read_only: bool = False,
) -> tuple[dict[JobKey, Job[Any]], dict[JobKey, str]]:
    """Each job's state: the end its folder proves, else its backend's word (the open jobs
    re-attached, ``read_only`` if asked, or taken from ``attached``, and polled together).

    Returns the open jobs, attached, and every job's state (UNKNOWN for one that cannot be
    attached or asked).
    """
    states = {entry.key: entry.final_state for entry in entries if entry.final_state}
    jobs: dict[JobKey, Job[Any]] = {}
    for entry in entries:
        if not entry.open:
            continue
        known = attached.get(entry.key) if attached is not None else None
        try:
            jobs[entry.key] = known if known is not None else attach(entry, read_only)
        except Exception:  # vanished or damaged since it was read: its row says so
            states[entry.key] = "UNKNOWN"
    polled = poll_all(jobs.values())
    for key, job in jobs.items():
        if job.key in polled:
            states[key] = polled[job.key]
            continue
        try:  # missed by its backend's batch: asked on its own
            states[key] = job.state
        except Exception:
            states[key] = "UNKNOWN"
    return jobs, states
