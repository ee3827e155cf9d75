"""A task's outcome file, ``<id>_<task>_result.pkl``: ``("success", value)`` or
``("error", traceback)``, written once the callable has returned or raised.

Streamed into the file (a result of several GB needs no second copy in memory), fsynced, then
renamed into place (``payload.dump``). A result that cannot be pickled is written as the error
that says so; one the filesystem refuses (a full disk, a quota) leaves no part of it behind,
and :func:`write_outcome` says why, for the worker to record where the user looks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import payload
from .errors import FailedJobError, PayloadError
from .files import WriteError
from .paths import JobPaths


def write_outcome(path: Path, status: str, value: Any) -> str | None:
    """Write the task's outcome; None once written, else why the filesystem refused it."""
    try:
        _dump(path, status, value)
    except WriteError as error:
        what = "result" if status == "success" else "traceback"
        return f"the {what} could not be written to {path.parent}: {error.cause()}"
    return None


def _dump(path: Path, status: str, value: Any) -> None:
    try:
        payload.dump((status, value), path)
    except WriteError:
        raise  # the filesystem's failure, not the result's
    except Exception as error:  # the result itself cannot be pickled
        message = f"the job's result of type {type(value).__name__} cannot be pickled: {error!r}"
        payload.dump(("error", message), path)


def read_outcome(path: Path) -> tuple[str, Any]:
    """A task's outcome as written: a damaged or foreign file is an error outcome that says so."""
    try:
        outcome = payload.load(path)
    except PayloadError as error:
        return ("error", f"PayloadError: {error}")
    if not (isinstance(outcome, tuple) and len(outcome) == 2):
        return ("error", f"{path} does not hold a job result")
    return outcome


def failed_task_error(paths: JobPaths, trace: str) -> FailedJobError:
    """What ``job.result()`` raises for the task of ``paths`` that failed with ``trace``."""
    task = paths.task_id
    return FailedJobError(
        f"Job {paths.job_id} (task {task}) failed during processing with trace:\n"
        f"{'-' * 40}\n{trace}\n{'-' * 40}\n"
        f"Logs: job.stderr({task}) and job.stdout({task}), or\n"
        f"  - {paths.stderr}\n  - {paths.stdout}"
    )
