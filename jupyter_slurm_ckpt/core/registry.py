"""What the backends and the package register with the core, which imports none of them.

Each backend's ``Job`` and ``Executor`` classes register themselves when they are defined (by
their ``cluster`` name; the package imports every backend), so that ``Job(folder, id)`` and
``job.resubmit()`` find the backend a job's description names. The package registers how a job
shows itself in a notebook (the views; the core renders nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import JobFolderError

if TYPE_CHECKING:
    from .executor import Executor
    from .job import Job

_JOB_CLASSES: dict[str, type[Job[Any]]] = {}
_EXECUTOR_CLASSES: dict[str, type[Executor]] = {}
_display: Callable[[Job[Any]], dict[str, Any]] | None = None


def register_job_class(cls: type[Job[Any]]) -> None:
    """Register a backend's job class under its ``cluster`` (the first one stays)."""
    _JOB_CLASSES.setdefault(cls.cluster, cls)


def register_executor_class(cls: type[Executor]) -> None:
    """Register a backend's executor class under its ``cluster`` (the first one stays)."""
    _EXECUTOR_CLASSES.setdefault(cls.cluster, cls)


def job_class(cluster: str) -> type[Job[Any]]:
    """The job class of the backend ``cluster``.

    Raises
    ------
    JobFolderError
        For a name no backend has (a job description names it).
    """
    try:
        return _JOB_CLASSES[cluster]
    except KeyError:
        raise JobFolderError(f"unknown backend {cluster!r} in job description") from None


def executor_class(cluster: str) -> type[Executor]:
    """The executor class of the backend ``cluster`` (``local``, ``slurm``, ``debug``).

    Raises
    ------
    ValueError
        For a name no backend has.
    """
    try:
        return _EXECUTOR_CLASSES[cluster]
    except KeyError:
        known = ", ".join(sorted(_EXECUTOR_CLASSES))
        raise ValueError(f"unknown cluster {cluster!r}; choose one of {known}") from None


def register_display(render: Callable[[Job[Any]], dict[str, Any]]) -> None:
    """Make ``render(job)`` the rich display of every job (``Job._repr_mimebundle_``)."""
    global _display
    _display = render


def display(job: Job[Any]) -> dict[str, Any] | None:
    """A job's rich display, None when nothing was registered."""
    return None if _display is None else _display(job)
