"""Sessions with the remote side: a few long-lived ``python -m ...ssh.remote`` processes on the
cluster, each behind one session of the master connection, asked one request at a time.

A request is one round trip on a session that is already there: no login, no process start,
no import. :class:`Remote` keeps the sessions of one cluster and one remote Python (a few, so
that the watcher, an upload and a button never wait for each other), checks the versions the
remote side states when a session starts (``hello``), and counts every round trip
(:data:`COUNTER`). When the cluster cannot be reached it says so at once for a while (backing
off) instead of making every caller wait for ``ssh`` again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from .connection import Connection, RemoteUnreachable, remote_command
from .hello import check, missing_package
from .protocol import (
    REMOTE_MODULE,
    ChannelError,
    Reader,
    Writer,
    raise_for,
)
from .target import SshTarget

#: A session waits this long for a byte of an answer (the remote side may be asking Slurm).
IDLE_TIMEOUT_S = 60.0
#: At most this many sessions per cluster and remote Python.
MAX_SESSIONS = 4
#: An idle session is ended after this long (the master then ends ControlPersist later).
SESSION_IDLE_S = 300.0
#: After a failure, the cluster is not tried again for this long, doubling up to the maximum.
RETRY_S = (1.0, 8.0)

#: Receives an answer's body: ``receive(answer, reader)`` must read exactly ``answer["body"]``.
Receive = Callable[[dict[str, Any], Reader], Any]


@dataclass
class RoundTrips:
    """Round trips made to remote sides by this process (benchmarks and tests count them)."""

    total: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    #: How many jobs the requests of each kind named, in all (a ``status`` names every job).
    jobs_by_op: dict[str, int] = field(default_factory=dict)
    sessions_started: int = 0

    def add(self, op: str, jobs: int = 0) -> None:
        self.total += 1
        self.by_op[op] = self.by_op.get(op, 0) + 1
        self.jobs_by_op[op] = self.jobs_by_op.get(op, 0) + jobs


COUNTER = RoundTrips()


class Session:
    """One remote service process, reached through one SSH session."""

    def __init__(self, connection: Connection, python: str) -> None:
        self._errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.process = subprocess.Popen(
            connection.session_argv(remote_command(python, REMOTE_MODULE)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            start_new_session=True,  # a kernel interrupt (SIGINT) is not for the session
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        os.set_blocking(self.process.stdin.fileno(), False)
        self.reader = Reader(self.process.stdout.fileno(), IDLE_TIMEOUT_S)
        self.writer = Writer(self.process.stdin.fileno(), IDLE_TIMEOUT_S)
        self.last_used = time.monotonic()
        self.hello: dict[str, Any] = {}
        self.closed = False
        #: Whether the last request was sent whole (see ``RemoteUnreachable.request_sent``).
        self.sent = False

    def start(self, where: str, python: str) -> dict[str, Any]:
        """Read the remote side's hello and check its versions (see ``hello.check``)."""
        try:
            self.hello = self.reader.header()
        except (EOFError, ChannelError, OSError):
            stderr = self.stderr()
            self.close()
            problem = missing_package(stderr, where, python)
            if problem is not None:
                raise problem from None
            raise RemoteUnreachable(
                f"{python} -m {REMOTE_MODULE} did not start on {where}: "
                f"{stderr.strip().splitlines()[-1] if stderr.strip() else 'no message'}"
            ) from None
        try:
            check(self.hello, where, python)
        except BaseException:
            self.close()
            raise
        return self.hello

    def request(
        self, header: dict[str, Any], body: Iterable[Any] = (), receive: Receive | None = None
    ) -> dict[str, Any]:
        """Send one request, read its answer (its body to ``receive``, or into ``answer
        ["data"]``); raise the remote error it carries."""
        self.last_used = time.monotonic()
        self.sent = False
        self.writer.message(header, body)
        self.sent = True
        answer = self.reader.header()
        size = int(answer.get("body", 0))
        if receive is not None:
            receive(answer, self.reader)
        elif size:
            answer["data"] = self.reader.body_bytes(size)
        self.last_used = time.monotonic()
        return raise_for(answer)

    def stderr(self) -> str:
        """What the remote side (and ssh) wrote to stderr so far."""
        with contextlib.suppress(OSError, ValueError):
            self._errors.seek(0)
            return self._errors.read()[-4000:].decode(errors="replace")
        return ""

    def close(self) -> None:
        """End the session: closing its stdin ends the remote side; kill what lingers."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            if self.process.stdout is not None:
                self.process.stdout.close()
        self._errors.close()


class Remote:
    """A cluster reached over SSH, with one Python environment there (see the module doc).

    Parameters
    ----------
    target
        The host (``SshTarget``; its folder part is ignored here).
    python
        The remote side's interpreter (``python3``, ``~/env/bin/python``...).
    """

    def __init__(self, target: SshTarget, python: str) -> None:
        self.target = target.without_folder()
        self.python = python
        self.connection = Connection(self.target)
        self.hello: dict[str, Any] | None = None
        #: Why the last request failed to reach the cluster (None: the last one did).
        self.last_error: RemoteUnreachable | None = None
        self.unreachable_since: float | None = None
        self._retry_at = 0.0
        self._retry_s = RETRY_S[0]
        self._idle: list[Session] = []
        self._busy = 0
        self._condition = threading.Condition()
        self._reaper: threading.Thread | None = None

    @property
    def where(self) -> str:
        return str(self.target)

    def request(
        self,
        header: dict[str, Any],
        body: Iterable[Any] = (),
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """One round trip (see :meth:`Session.request`).

        Raises
        ------
        RemoteUnreachable
            When the cluster cannot be reached (at once, without trying, for a while after a
            failure); ``SshLoginError`` when the login itself fails.
        RemoteEnvironmentError
            When the cluster's Python cannot run this kernel's jobs.
        """
        with self._session() as session:
            COUNTER.add(str(header.get("op")), len(header.get("jobs") or ()))
            try:
                answer = session.request(header, body, receive)
            except KeyboardInterrupt:
                session.close()  # cut mid-message: this session's pipes are out of step
                raise
            except (EOFError, ChannelError, OSError) as error:
                session.close()
                if isinstance(error, ChannelError):  # stalled: the next try logs in afresh
                    self.connection.stop()
                phase = "waiting for the answer" if session.sent else "sending the request"
                self._failed(f"the connection broke while {phase} ({error})")
                raise RemoteUnreachable(
                    f"cannot reach {self.where}: the connection broke while {phase} ({error})",
                    request_sent=session.sent,
                ) from None
            finally:
                if not session.closed:
                    self._reached()
        return answer

    def start(self) -> dict[str, Any]:
        """Connect (if not yet), and return what the remote side said (versions, home...)."""
        with self._session():
            pass
        assert self.hello is not None
        return self.hello

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._checkout()
        try:
            yield session
        finally:
            with self._condition:
                self._busy -= 1
                if not session.closed and session.process.poll() is None:
                    self._idle.append(session)
                    self._reap_later()
                self._condition.notify()

    def _checkout(self) -> Session:
        with self._condition:
            while not self._idle and self._busy >= MAX_SESSIONS:
                self._condition.wait()
            if self._idle:
                self._busy += 1
                return self._idle.pop()
            if self.last_error is not None and time.monotonic() < self._retry_at:
                # Tried a moment ago: say so without waiting again (a new exception each
                # time: one object raised over and over would collect every traceback).
                raise type(self.last_error)(str(self.last_error))
            self._busy += 1
        try:
            return self._open()
        except BaseException:
            with self._condition:
                self._busy -= 1
                self._condition.notify()
            raise

    def _open(self) -> Session:
        try:
            self.connection.ensure()
            session = Session(self.connection, self.python)
            COUNTER.sessions_started += 1
            self.hello = session.start(self.where, self.python)
        except RemoteUnreachable as error:
            raise self._failed(str(error), error) from None
        return session

    def _failed(self, reason: str, error: RemoteUnreachable | None = None) -> RemoteUnreachable:
        """Remember that the cluster cannot be reached, and when to try again."""
        failure = error or RemoteUnreachable(f"cannot reach {self.where}: {reason}")
        with self._condition:
            now = time.monotonic()
            self.last_error = failure
            if self.unreachable_since is None:
                self.unreachable_since = time.time()
            self._retry_at = now + self._retry_s
            self._retry_s = min(self._retry_s * 2, RETRY_S[1])
            idle, self._idle = self._idle, []
        for session in idle:  # they share the connection that failed
            session.close()
        return failure

    def _reached(self) -> None:
        if self.last_error is not None:
            with self._condition:
                self.last_error = None
                self.unreachable_since = None
                self._retry_s = RETRY_S[0]

    def expire_backoff(self) -> None:
        """Try the cluster at the next request, even during a back-off (a user's action)."""
        with self._condition:
            self._retry_at = 0.0

    def _reap_later(self) -> None:
        """Make sure idle sessions end :data:`SESSION_IDLE_S` after their last use, even if
        no request comes (a remote process is not left on the login node for nothing)."""
        if self._reaper is not None and self._reaper.is_alive():
            return
        self._reaper = threading.Thread(
            target=self._reap, name="jupyter_slurm_ckpt-ssh-idle", daemon=True
        )
        self._reaper.start()

    def _reap(self) -> None:
        while True:
            time.sleep(SESSION_IDLE_S / 5)
            with self._condition:
                now = time.monotonic()
                stale = [s for s in self._idle if now - s.last_used >= SESSION_IDLE_S]
                self._idle = [s for s in self._idle if s not in stale]
                done = not self._idle
                if done:
                    self._reaper = None
            for session in stale:  # outside the lock: ending one may take a moment
                session.close()
            if done:
                return

    def close(self) -> None:
        """End every idle session (the master ends ``ControlPersist`` seconds later)."""
        with self._condition:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()


_remotes: dict[tuple[str, str], Remote] = {}
_remotes_lock = threading.Lock()


def remote_for(target: SshTarget, python: str) -> Remote:
    """The process's :class:`Remote` for this host and remote Python (shared by all jobs)."""
    key = (target.without_folder().url, python)
    with _remotes_lock:
        remote = _remotes.get(key)
        if remote is None:
            remote = _remotes[key] = Remote(target, python)
        return remote
