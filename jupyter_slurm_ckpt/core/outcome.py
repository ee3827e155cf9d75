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
from .files import WriteError


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
