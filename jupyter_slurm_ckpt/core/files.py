"""Atomic writes and private folders: every file another process reads goes through here."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from pathlib import Path

from .errors import JobFolderError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
TEMP_PREFIX = ".tmp-"


def ensure_private_folder(folder: Path) -> Path:
    """Create ``folder`` (mode 0700) if needed and check that it is safe to load pickles from.

    Raises
    ------
    JobFolderError
        If the path is not a directory, is not writable, belongs to another user, or is
        writable by group or others (anyone who can write there can make us unpickle code).
    """
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise JobFolderError(f"job folder {folder} exists and is not a directory; choose another")
    missing = []
    parent = folder
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    try:
        # One by one, outermost first, each created 0700 (mkdir(parents=True) would create
        # the parents with the umask's mode: world-writable for a moment under umask 0).
        for created in reversed(missing):
            with contextlib.suppress(FileExistsError):  # made meanwhile by another submitter
                created.mkdir(mode=PRIVATE_DIR_MODE)
    except OSError as error:
        raise JobFolderError(f"cannot create job folder {folder}: {error.strerror}") from None
    for created in missing:
        # mkdir applies the umask (it can only take bits away); the folders we create are
        # the user's own, exactly 0700.
        with contextlib.suppress(OSError):
            os.chmod(created, PRIVATE_DIR_MODE)
    check_folder_is_safe(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise JobFolderError(f"job folder {folder} is not writable; choose another with --folder")
    return folder


def check_folder_is_safe(folder: Path, *, follow_symlinks: bool = True) -> None:
    """Refuse a folder owned by someone else, or writable by group or others.

    With ``follow_symlinks=False`` a symbolic link is refused too, whoever it points to (a
    name in a shared folder such as /tmp that someone else created first, and may swap).
    """
    if follow_symlinks:
        info = os.stat(folder)
    else:
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            if os.path.islink(folder):
                raise JobFolderError(
                    f"{folder} is a symbolic link (to {os.readlink(folder)}), not a folder of "
                    "yours: remove it"
                ) from None
            raise
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
    if info.st_uid != os.getuid():
        raise JobFolderError(
            f"job folder {folder} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); "
            "refusing to load pickles from it"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise JobFolderError(
            f"job folder {folder} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run `chmod 700 {folder}` or use another folder"
        )


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The temporary file lives beside the target (same filesystem, so ``rename`` is atomic) and
    is hidden; ``durable`` fsyncs it first so that a node crash cannot leave an empty file.
    """
    path = Path(path)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    os.close(fd)
    os.replace(temp, path)


def atomic_write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Text variant of :func:`atomic_write_bytes` (not fsynced by default: small metadata)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def append_line(path: Path, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor.

    Concurrent appenders never interleave within a line this way; a process killed during
    the call leaves at most one partial last line, which readers skip.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def open_private_append(path: Path) -> int:
    """Open a log file for appending, created 0600; returns the raw descriptor."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)


def remove_stale_temp_files(folder: Path, job_id: str, older_than: float | None = None) -> None:
    """Delete temporaries a killed writer of this job left behind (they were never renamed).

    ``older_than`` (unix time) spares the temporaries of writers that may still be running:
    those of the other tasks of the current run, written after it started.
    """
    for temp in Path(folder).glob(f"{TEMP_PREFIX}{job_id}_*"):
        with contextlib.suppress(OSError):
            if older_than is None or temp.stat().st_mtime < older_than:
                temp.unlink()
