"""The messages between the kernel and the remote service, over the pipes of one SSH session.

A message is one line of JSON (an object, UTF-8), then the raw bytes its ``body`` field
counts (0 when absent): payloads going up, file contents (logs, events, results) coming down.
Nothing of a message is ever a shell string: the remote command line itself is a constant and
the interpreter's quoted path (``connection.remote_command``); everything the user chose (job
folders, ids, parameters) travels inside the JSON.

Both ends read through :class:`Reader` (a deadline on every wait: a connection that stalls is
reported, never waited on forever) and write through :class:`Writer`. Failures on the remote
side come back as ``{"ok": false, "error": {"type": ..., "message": ...}}`` and are raised
here as the same type when it is one of :data:`KNOWN_ERRORS`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import time
from collections.abc import Callable, Iterable
from typing import Any

from ...core import errors

#: Bumped when a message changes meaning: both ends must speak the same one.
PROTOCOL_VERSION = 1
#: The module the remote side runs (``python -m``).
REMOTE_MODULE = "jupyter_slurm_ckpt.backends.ssh.remote"
#: A header line longer than this is not ours (a stray print on the remote's stdout...).
MAX_HEADER_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

#: Errors the remote side raises that come back as themselves (others as ``RemoteError``):
#: the core's, and the built-in ones its callers catch.
KNOWN_ERRORS: dict[str, type[Exception]] = {
    error.__name__: error
    for error in (
        *(e for e in vars(errors).values() if isinstance(e, type) and issubclass(e, Exception)),
        NotImplementedError,
        ValueError,
        KeyError,
        RuntimeError,
    )
}


class RemoteError(RuntimeError):
    """The remote side failed in a way not named by :data:`KNOWN_ERRORS` (its type and
    message are in the text)."""


class ChannelError(ConnectionError):
    """The session's pipes broke, stalled or carried something that is not a message."""


def error_answer(error: BaseException) -> dict[str, Any]:
    """The answer that carries ``error`` to the other side."""
    return {"ok": False, "error": {"type": type(error).__name__, "message": str(error)}}


def raise_for(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` itself when it says ok, else the error it carries, raised."""
    if answer.get("ok"):
        return answer
    error = answer.get("error") or {}
    kind, message = str(error.get("type", "")), str(error.get("message", "no message"))
    known = KNOWN_ERRORS.get(kind)
    if known is not None:
        raise known(message)
    raise RemoteError(f"{kind or 'error'} on the cluster: {message}")


def widen_pipe(fd: int) -> None:
    """Let a pipe hold 1 MiB instead of 64 KiB: a payload then crosses in a sixteenth of the
    reads, writes and wake-ups (nothing happens for a descriptor that is not a pipe)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, CHUNK_BYTES)


def encode_header(header: dict[str, Any]) -> bytes:
    """A header as its line (compact JSON, no newline inside)."""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n"


class Reader:
    """Reads messages from a file descriptor, each wait bounded by ``idle_timeout_s``: no byte
    for that long means the other side (or the connection) stalled."""

    def __init__(self, fd: int, idle_timeout_s: float | None = None) -> None:
        self.fd = fd
        self.idle_timeout_s = idle_timeout_s
        self._buffer = bytearray()
        self._chunk = memoryview(bytearray(CHUNK_BYTES))  # bodies are read through it
        widen_pipe(fd)

    def _wait_readable(self) -> None:
        if self.idle_timeout_s is not None:
            ready, _, _ = select.select([self.fd], [], [], self.idle_timeout_s)
            if not ready:
                raise ChannelError(f"no answer for {self.idle_timeout_s:g} s")

    def _read_chunk(self, size: int) -> memoryview:
        """The next bytes on the descriptor (at most ``size``, at least one), read into the
        reused chunk buffer; raise on end of file or a stall."""
        self._wait_readable()
        count = os.readv(self.fd, [self._chunk[: min(size, CHUNK_BYTES)]])
        if not count:
            raise EOFError("the other side closed the session")
        return self._chunk[:count]

    def _fill(self) -> None:
        self._buffer += self._read_chunk(CHUNK_BYTES)

    def header(self) -> dict[str, Any]:
        """The next message's header line, as a dict."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                break
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ChannelError("a header line of more than 64 MiB: not a message")
            self._fill()
        try:
            header = json.loads(line)
        except ValueError:
            shown = line[:200].decode(errors="replace")
            raise ChannelError(f"not a message: {shown!r}") from None
        if not isinstance(header, dict):
            raise ChannelError("a message header is a JSON object")
        return header

    def body(self, size: int, sink: Callable[[memoryview], Any]) -> None:
        """Hand the next ``size`` bytes to ``sink``, piece by piece (never all in memory):
        what is buffered first, then straight from the descriptor."""
        left = size
        if self._buffer:
            taken = min(left, len(self._buffer))
            piece = memoryview(self._buffer)[:taken]
            try:
                sink(piece)
            finally:
                piece.release()
            del self._buffer[:taken]
            left -= taken
        while left:
            piece = self._read_chunk(left)
            sink(piece)
            left -= len(piece)

    def body_bytes(self, size: int) -> bytes:
        """The next ``size`` bytes (for small bodies)."""
        parts = bytearray()
        self.body(size, parts.extend)
        return bytes(parts)


class Writer:
    """Writes messages to a file descriptor; with ``idle_timeout_s``, a write that makes no
    progress for that long (a full pipe nobody empties) raises :class:`ChannelError`."""

    def __init__(self, fd: int, idle_timeout_s: float | None = None) -> None:
        self.fd = fd
        self.idle_timeout_s = idle_timeout_s
        widen_pipe(fd)

    def write(self, data: Any) -> None:
        """Write all of ``data`` (any bytes-like object)."""
        view = memoryview(data).cast("B")
        while view:
            self._wait_writable()
            try:
                written = os.write(self.fd, view[:CHUNK_BYTES])
            except BlockingIOError:  # a non-blocking pipe that filled up meanwhile
                continue
            view = view[written:]

    def send_file_range(self, fd: int, offset: int, size: int) -> None:
        """Copy ``size`` bytes of the file ``fd`` from ``offset`` without reading them into
        Python (``sendfile``), or through a bounded buffer where that is refused."""
        end = offset + size
        while offset < end:
            self._wait_writable()
            try:
                sent = os.sendfile(self.fd, fd, offset, min(end - offset, 16 * CHUNK_BYTES))
            except BlockingIOError:
                continue
            except OSError:
                sent = 0
                chunk = os.pread(fd, min(end - offset, CHUNK_BYTES), offset)
                if chunk:
                    self.write(chunk)
                    sent = len(chunk)
            if sent == 0:
                raise ChannelError(f"the file ended {end - offset} bytes early")
            offset += sent

    def message(self, header: dict[str, Any], body: Iterable[Any] = ()) -> None:
        """One message: the header (its ``body`` field must count the parts), then each part
        (bytes-like, or a callable that writes itself through this writer)."""
        self.write(encode_header(header))
        for part in body:
            if callable(part):
                part(self)
            else:
                self.write(part)

    def _wait_writable(self) -> None:
        if self.idle_timeout_s is None:
            return
        deadline = time.monotonic() + self.idle_timeout_s
        while True:
            _, ready, _ = select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))
            if ready:
                return
            if time.monotonic() >= deadline:
                raise ChannelError(f"the session took nothing for {self.idle_timeout_s:g} s")
