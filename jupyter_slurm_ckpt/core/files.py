"""Atomic writes and private folders: every file another process reads goes through here."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import JobFolderError
from .links import name_unnamed_file, rename_into_place

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
TEMP_PREFIX = ".tmp-"
#: What a submission's file is called (as a temporary, ``.tmp-pending.<random>``) until the
#: submission names it, where files without a name (``O_TMPFILE``) are not supported (NFS).
PENDING_NAME = "pending"
_COUNTER_WIDTH = 12

# Large buffers are written in slices of this size (views, not copies): measured here, one
# write(2) of a whole large buffer reaches the disk later and less steadily than slices.
_WRITE_CHUNK = 1024 * 1024


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


class WriteError(OSError):
    """Writing a file of the job folder failed (full disk, quota, I/O error): the filesystem's
    fault, not that of what was being written."""

    def cause(self) -> str:
        """'No space left on device (ENOSPC)': what the filesystem said, for users."""
        name = errno.errorcode.get(self.errno or 0)
        return f"{self.strerror}" + (f" ({name})" if name else "")


def _write_error(error: OSError) -> WriteError:
    if isinstance(error, WriteError):
        return error
    failure = WriteError(error.errno, error.strerror, error.filename)
    failure.__cause__ = error
    return failure


def _temp_beside(path: Path) -> Path:
    # Named after the target: remove_stale_temp_files finds what a killed writer left.
    return path.with_name(f"{TEMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")


def link_or_copy(source: Path, target: Path) -> None:
    """Give ``target`` the content of ``source`` atomically: a hard link where the filesystem
    allows one (no copy, no memory), else a copy (private, fsynced), renamed into place.

    Safe for files that are only ever replaced by rename, never rewritten in place (every
    file of a job folder): replacing one name later leaves the other as it was.
    """
    temp = _temp_beside(Path(target))
    try:
        try:
            os.link(source, temp)
        except OSError:
            with open(source, "rb") as reader:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
                with os.fdopen(fd, "wb") as writer:
                    while chunk := reader.read(1 << 20):
                        writer.write(chunk)
                    writer.flush()
                    os.fsync(writer.fileno())
        os.replace(temp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise _write_error(error) from None


class PendingFile:
    """A file being written that no reader can see until :meth:`commit` gives it its name.

    :meth:`write` takes any contiguous buffer and writes it from its own memory (no copy, no
    buffering); :meth:`commit` fsyncs it (``durable``) and renames it onto its target, so that
    readers see the old file or the new one, never a part. Filesystem failures are raised as
    :class:`WriteError`; whatever happens before the commit, the target is untouched.
    """

    def __init__(self, fd: int, temp: Path | None) -> None:
        self._fd = fd
        self._temp = temp  # None: an unnamed file (O_TMPFILE), named only at the commit

    @classmethod
    def beside(cls, path: Path) -> PendingFile:
        """A hidden temporary beside ``path``: same filesystem, so the rename is atomic."""
        temp = _temp_beside(Path(path))
        try:  # readable too: a pending payload may be copied elsewhere (Pickled.copy_to)
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except OSError as error:
            raise _write_error(error) from None
        return cls(fd, temp)

    @classmethod
    def unnamed(cls, folder: Path) -> PendingFile:
        """A file without a name on ``folder``'s filesystem, for a target not yet known.

        Creating and discarding it changes nothing anyone can see (no entry, not even the
        folder's modification time), and a process killed meanwhile leaves nothing behind.
        ``folder`` need not exist yet: the file is then made in its nearest existing parent,
        whose filesystem the folder will be created on. Where unnamed files are not supported
        (``O_TMPFILE``), it is a hidden temporary in ``folder``, created and checked as every
        job folder (:func:`ensure_private_folder`).
        """
        anchor = Path(folder).expanduser().absolute()
        while not anchor.exists() and anchor != anchor.parent:
            anchor = anchor.parent
        unnamed_flag = getattr(os, "O_TMPFILE", 0)
        if unnamed_flag:
            # Read-write: the fallback of _name_unnamed_file copies from it.
            with contextlib.suppress(OSError):  # unsupported, or a folder we cannot use
                return cls(os.open(anchor, unnamed_flag | os.O_RDWR, PRIVATE_FILE_MODE), None)
        return cls.beside(ensure_private_folder(folder) / PENDING_NAME)

    def fileno(self) -> int:
        """The file's descriptor (open for reading and writing until the commit)."""
        return self._fd

    def write(self, data: Any) -> int:
        """Write all of ``data`` (any contiguous buffer); returns its size in bytes."""
        view = memoryview(data).cast("B")
        size = view.nbytes
        try:
            while view:
                written = os.write(self._fd, view[:_WRITE_CHUNK])
                view = view[written:]
        except OSError as error:
            raise _write_error(error) from None
        return size

    def commit(self, path: Path, *, durable: bool = True) -> None:
        """Give the file its name ``path``, replacing any file there, atomically.

        ``durable`` fsyncs the data first, so that a node crash cannot leave an empty file,
        and the folder after the rename, so that it cannot bring back the old file (or no
        file at all) once this returns.
        """
        path = Path(path)
        try:
            if durable:
                os.fsync(self._fd)
            if self._temp is None:
                self._temp = _temp_beside(path)
                name_unnamed_file(self._fd, self._temp, durable, PRIVATE_FILE_MODE)
            os.close(self._fd)
            self._fd = -1
            os.replace(self._temp, path)
            self._temp = None
            if durable:
                fsync_folder(path.parent)
        except OSError as error:
            self.discard()
            raise _write_error(error) from None
        except BaseException:
            self.discard()
            raise

    def sync(self) -> None:
        """fsync what was written so far (before names are given with :meth:`link`)."""
        try:
            os.fsync(self._fd)
        except OSError as error:
            raise _write_error(error) from None

    def link(self, path: Path) -> None:
        """Give the file, written completely, one more name ``path`` and keep it open for more
        (the elements of a job array share their files this way: a hard link is a directory
        entry, where a new file costs an inode). Readers see the file or the one it replaces,
        never a part; where hard links are refused, ``path`` gets a copy. :meth:`discard` then
        closes the file: the names given stay.
        """
        path = Path(path)
        try:
            if self._temp is not None:
                link_or_copy(self._temp, path)
                return
            try:
                name_unnamed_file(self._fd, path, False, PRIVATE_FILE_MODE, _temp_beside(path))
            except FileExistsError:  # replaced atomically, as commit() would
                temp = _temp_beside(path)
                name_unnamed_file(self._fd, temp, False, PRIVATE_FILE_MODE)
                rename_into_place(temp, path)
        except OSError as error:
            raise _write_error(error) from None

    def discard(self) -> None:
        """Drop the file (nothing happens after a commit)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp)
            self._temp = None


#: What a filesystem answers when it cannot fsync a folder (nothing to make durable then).
_NO_FOLDER_FSYNC = (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF)


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable: after a rename, a node crash keeps the new file.

    A filesystem that cannot fsync a folder (some network ones) is left as it is.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in _NO_FOLDER_FSYNC:
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The temporary file lives beside the target (same filesystem, so ``rename`` is atomic) and
    is hidden; ``durable`` fsyncs it first so that a node crash cannot leave an empty file.
    """
    pending = PendingFile.beside(path)
    try:
        pending.write(data)
    except BaseException:
        pending.discard()
        raise
    pending.commit(path, durable=durable)


def atomic_write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Text variant of :func:`atomic_write_bytes` (not fsynced by default: small metadata)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def append_line(path: Path, line: str) -> None:
    """Append one line, whole or not at all: one ``write`` on an ``O_APPEND`` descriptor.

    Concurrent appenders never interleave within a line this way, and a process killed during
    the call writes its line or nothing. A write the filesystem cuts short (a full disk, a
    quota) leaves no part of the line behind: the bytes it did write are blanked in place
    (spaces, then a newline: no new space needed), which readers skip, and :class:`WriteError`
    says why. A last line left unfinished by anything else is closed first, so that this line
    is never glued to it (and lost with it).

    Raises
    ------
    WriteError
        When the line could not be appended; the file holds no part of it.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    except OSError as error:
        raise _write_error(error) from None
    try:
        if _ends_mid_line(fd):
            data = b"\n" + data
        try:
            written = os.write(fd, data)
        except OSError as error:
            raise _write_error(error) from None
        if written < len(data):
            end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: just after the bytes written
            _blank(path, end - written, written)
            raise _short_write(fd, path, written, len(data))
    finally:
        os.close(fd)


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _blank(path: Path, offset: int, size: int) -> None:
    """Overwrite ``size`` bytes at ``offset`` with a blank line (another descriptor: Linux
    appends every ``pwrite`` on an ``O_APPEND`` one). Left as it is if that fails: the next
    append closes it, and readers skip it as one damaged line."""
    if size <= 0:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, b" " * (size - 1) + b"\n", offset)
        finally:
            os.close(fd)


def _short_write(fd: int, path: Path, written: int, size: int) -> WriteError:
    """The error of a write cut short: the filesystem says no more then (a full disk, most
    often, which its free space tells), but not why."""
    full = False
    with contextlib.suppress(OSError):
        full = os.fstatvfs(fd).f_bavail == 0
    code = errno.ENOSPC if full else errno.EIO
    return WriteError(
        code, f"{os.strerror(code)} (the line was cut short at {written} of {size} bytes, "
        "and left out)", str(path)
    )


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600 if missing) for the ``with`` block.

    Callers in other processes, and other threads of this one, wait their turn: the lock
    belongs to the open file, and a process that dies releases it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def open_private_append(path: Path) -> int:
    """Open a log file for appending, created 0600; returns the raw descriptor."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)


def temporary_names(folder: Path) -> list[str]:
    """The names of the temporaries in ``folder`` (one look at it, however many jobs it holds)."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        return [entry.name for entry in entries if entry.name.startswith(TEMP_PREFIX)]
    return []


def remove_stale_temp_files(folder: Path, job_id: str, older_than: float | None = None) -> None:
    """Delete temporaries a killed writer of this job left behind (they were never renamed).

    ``older_than`` (unix time) spares the temporaries of writers that may still be running:
    those of the other tasks of the current run, written after it started.
    """
    for temp in Path(folder).glob(f"{TEMP_PREFIX}{job_id}_*"):
        with contextlib.suppress(OSError):
            if older_than is None or temp.stat().st_mtime < older_than:
                temp.unlink()


def next_counter_value(path: Path) -> int:
    """Increment the number stored in ``path`` (created 0600) and return it: 1, 2, 3...

    Atomic across processes (an exclusive ``flock`` on the file while it is read and
    rewritten): two submitters never get the same value.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.pread(fd, _COUNTER_WIDTH, 0).decode().strip()
        number = int(text) + 1 if text.isdigit() else 1
        # Fixed width: overwriting in place needs no truncate (which costs a journal write).
        os.pwrite(fd, f"{number:0{_COUNTER_WIDTH}d}".encode(), 0)
    finally:
        os.close(fd)  # closing releases the lock
    return number
