"""The states of jobs of any backends at once: one batched ``poll_states`` call per backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .job import Job
from .paths import JobKey


def poll_states(jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
    """States of ``jobs`` by their :attr:`~Job.key`, from one ``poll_states`` call per backend
    (job class). A backend that fails leaves its jobs out: asked one by one (``job.state``),
    they report the real error."""
    groups: dict[type[Job[Any]], list[Job[Any]]] = {}
    for job in jobs:
        groups.setdefault(type(job), []).append(job)
    states: dict[JobKey, str] = {}
    for cls, group in groups.items():
        try:
            states.update(cls.poll_states(group))
        except Exception:  # the per-job fallback (job.state) reports the real error
            continue
    return states
