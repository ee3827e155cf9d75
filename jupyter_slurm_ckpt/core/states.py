"""The states of many jobs at once: one batched ``poll_states`` call per backend.

The watcher polls every job it watches through it once a tick, and so does the remote side of
the SSH backend for every job a kernel asks about: Slurm answers them all from one scheduler
call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

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
