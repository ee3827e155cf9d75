"""A small filesystem of its own, and a way to fill it: what a full disk does to a job folder.

A real tmpfs, mounted for the test (root only) and unmounted afterwards: the kernel's own
``ENOSPC``, short writes included, not a mock. Used by ``test_full_disk`` and by the
kill-anywhere trials (``kill_anywhere``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

MB = 1024 * 1024
FILLER_NAME = "filler"


class CannotMount(RuntimeError):
    """This process cannot mount a filesystem (it is not root)."""


def can_mount() -> bool:
    """Whether this process may mount a filesystem (root)."""
    return os.geteuid() == 0


@contextlib.contextmanager
def small_filesystem(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` at ``path`` (created, mode 0700), unmounted at the end.

    Raises
    ------
    CannotMount
        When not run as root, or when the mount is refused (its message).
    """
    if not can_mount():
        raise CannotMount("mounting a small tmpfs needs root")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    options = f"size={size_bytes},mode=0700,uid={os.getuid()},gid={os.getgid()}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise CannotMount(f"mount -t tmpfs refused: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem with one file; delete it to free them.

    The last pages of the other files keep their slack, as on a real full disk: a small
    append may still fit there, a larger one is cut short, the next one fails.
    """
    filler = folder / FILLER_NAME
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (b"\0" * MB, b"\0" * 4096, b"\0"):
            with contextlib.suppress(OSError):
                while os.write(fd, chunk) == len(chunk):
                    pass
        try:
            os.write(fd, b"\0")
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
        else:
            raise AssertionError(f"{folder} still takes bytes after filling it")
    finally:
        os.close(fd)
    return filler
