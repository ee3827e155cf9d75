"""Each verification run works in its own fresh working directory.

A checkpoint written to a *relative* path (``"ckpt/net.npz"``) then belongs to that run alone:
the interrupted run cannot resume from the reference's checkpoint, and a checkpoint left by an
earlier notebook run is never picked up. The directory change happens inside the job (the
callable is wrapped in :class:`RunInFolder`), so it works on every backend. An *absolute* path
argument is shared by every run: :func:`written_paths` tells when a run wrote one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.helpers import DelayedSubmission, checkpoint_method
from ..core.info import callable_name


@contextlib.contextmanager
def working_directory(folder: str) -> Iterator[None]:
    """Change the working directory for the block, then restore it."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


class RunInFolder:
    """``function`` run with ``folder`` as its working directory (a verification run's own).

    Importable (pickled by reference): the job unpickles it from the installed package.
    """

    def __init__(self, function: Callable[..., Any], folder: str) -> None:
        self.function = function
        self.folder = folder

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with working_directory(self.folder):
            return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"RunInFolder({callable_name(self.function)}, {self.folder!r})"


class CheckpointableRunInFolder(RunInFolder):
    """A :class:`RunInFolder` whose callable checkpoints: so does the wrapper, in its folder."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callable's own checkpoint and keep what it resubmits in the same folder."""
        method = checkpoint_method(self.function)
        assert method is not None  # in_folder wraps only a checkpointable callable in this class
        with working_directory(self.folder):
            replacement = method(*args, **kwargs)
        if not isinstance(replacement, DelayedSubmission):
            return replacement  # None or a wrong type: the worker reports it as usual
        return DelayedSubmission(
            in_folder(replacement.function, self.folder),
            *replacement.args,
            **replacement.kwargs,
        )


def in_folder(function: Callable[..., Any], folder: str) -> RunInFolder:
    """Wrap ``function`` to run in ``folder``, checkpointable if and only if it is."""
    if checkpoint_method(function) is None:
        return RunInFolder(function, folder)
    return CheckpointableRunInFolder(function, folder)


def folder_bytes(folder: Path) -> int:
    """The size of every file below ``folder`` (what a run's checkpoints left there)."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def path_arguments(delayed: DelayedSubmission[Any]) -> dict[Path, int | None]:
    """Absolute paths among the arguments, with their modification time (None: missing)."""
    found: dict[Path, int | None] = {}
    for value in [*delayed.args, *delayed.kwargs.values()]:
        if not isinstance(value, (str, os.PathLike)):
            continue
        text = os.fspath(value)
        if not isinstance(text, str) or not text or "\n" in text or len(text) > 4096:
            continue
        path = Path(text).expanduser()
        if path.is_absolute():
            found[path] = mtime(path)
    return found


def mtime(path: Path) -> int | None:
    """The modification time of ``path`` in nanoseconds, None when it does not exist."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def written_paths(before: dict[Path, int | None]) -> list[str]:
    """The absolute path arguments a run wrote (``before``: :func:`path_arguments` of the call
    before it): a file every run shares, so a run could resume from another's checkpoint."""
    return [
        str(path)
        for path, then in before.items()
        if mtime(path) != then and (then is None or path.is_file())
    ]
