"""Naming a file that has no name yet (``O_TMPFILE``): a hard link to it, or else a copy.

A pickle is written into a file without a name, which gets one only when the submission goes
ahead (``files.PendingFile``); a job array's file gets one name per element. Linking is a
directory entry (no copy, no memory); where both ways of linking are refused (some sandboxes),
the content is copied, in bounded chunks, into a new file of that name.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from pathlib import Path
from typing import Any

# linkat(2) arguments, and the chunk size of the copy that replaces it where it is refused.
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_COPY_CHUNK = 1024 * 1024


def name_unnamed_file(
    fd: int, target: Path, durable: bool, mode: int, staging: Path | None = None
) -> None:
    """Give the unnamed file open as ``fd`` (read-write) the new name ``target``, which must
    not exist (``FileExistsError``); a copy gets ``mode`` and, ``durable``, an fsync.

    A copy is written under ``staging`` (a temporary beside ``target``), then renamed: readers
    of ``target`` never see a part of it. Without ``staging`` it is written straight into
    ``target``, for a target that is itself a temporary.
    """
    for link in (_link_with_empty_path, _link_through_proc):
        try:
            link(fd, target)
            return
        except FileExistsError:
            raise
        except OSError:
            continue
    if staging is None:
        _copy_into_new_file(fd, target, durable, mode)
        return
    if os.path.lexists(target):  # as a link would have told (ids are unique: no race)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    _copy_into_new_file(fd, staging, durable, mode)
    rename_into_place(staging, target)


def rename_into_place(temporary: Path, target: Path) -> None:
    """Rename ``temporary`` onto ``target`` (replacing it atomically); the temporary is removed
    when that fails."""
    try:
        os.replace(temporary, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _link_with_empty_path(fd: int, target: Path) -> None:
    # linkat(fd, "", AT_EMPTY_PATH): needs CAP_DAC_READ_SEARCH on most kernels.
    import ctypes  # here: only submitting processes name unnamed files

    linkat = _linkat()
    if linkat is None:
        raise OSError(errno.ENOSYS, "no linkat to call")
    if linkat(fd, b"", _AT_FDCWD, os.fsencode(target), _AT_EMPTY_PATH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


@functools.lru_cache(maxsize=1)
def _linkat() -> Any:
    """libc's linkat, looked up once (a job array names its file once per element)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).linkat
    except (OSError, AttributeError):
        return None


def _link_through_proc(fd: int, target: Path) -> None:
    # What unprivileged processes use on ordinary Linux systems.
    os.link(f"/proc/self/fd/{fd}", target, follow_symlinks=True)


def _copy_into_new_file(fd: int, target: Path, durable: bool, mode: int) -> None:
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        offset = 0
        while chunk := os.pread(fd, _COPY_CHUNK, offset):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
            offset += len(chunk)
        if durable:
            os.fsync(out)
    except BaseException:
        os.close(out)
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
    os.close(out)
