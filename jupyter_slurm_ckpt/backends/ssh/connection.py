"""One multiplexed OpenSSH connection per cluster: the user's own ``ssh``, started once, reused.

Everything goes through the ``ssh`` client the user has set up: ``~/.ssh/config`` (aliases,
``ProxyJump``, keys, Kerberos), the agent, host key checking as configured. The package starts
one master connection (``ControlMaster``, kept ``ControlPersist`` seconds after its last
session) and opens every session through it: one login, then a session costs no handshake.
Where the user's config names a ``ControlPath`` of its own, that master is used, so a
connection the user opened in a terminal (a password, a second factor) serves the kernel too;
otherwise the socket lives in the user's private runtime folder.

No password is ever asked for or stored: the master starts in ``BatchMode``. A login that
needs typing fails with one line that says how to open the connection by hand.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import threading
from pathlib import Path

from ...core.paths import PackagePaths
from ..local.agent_client import agent_folder
from .target import SshTarget

#: How long the master stays after its last session ends, in seconds.
CONTROL_PERSIST_S = 600
CONNECT_TIMEOUT_S = 15
#: Keep-alives when the user's config sets none: a dead network is noticed within ~30 s.
SERVER_ALIVE = ("10", "3")
_SSH = "ssh"


class RemoteUnreachable(ConnectionError):
    """The cluster cannot be reached over SSH right now (the message says why).

    ``request_sent``: whether the request that failed had been sent whole (its answer was
    lost), so that it may have been carried out there.
    """

    def __init__(self, message: str, request_sent: bool = False) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class SshLoginError(RemoteUnreachable):
    """``ssh`` reached the host but could not log in (keys, host key): waiting will not help."""


def remote_command(python: str, module: str) -> str:
    """The remote shell command that runs ``python -m module``: the interpreter quoted as one
    word (``~/`` at its start still means the remote home), the module a constant."""
    if python.startswith("~/"):
        quoted = '"$HOME"/' + shlex.quote(python[2:])
    else:
        quoted = shlex.quote(python)
    return f"exec {quoted} -m {module}"


class Connection:
    """The master connection to one host (see the module docstring)."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target.without_folder()
        self._lock = threading.Lock()
        self._settings: dict[str, str] | None = None

    # -- what ssh makes of the target --------------------------------------------------------

    def settings(self) -> dict[str, str]:
        """The user's effective ssh settings for this host (``ssh -G``: no connection made)."""
        if self._settings is None:
            done = self._run(["-G", *self._destination()], timeout=CONNECT_TIMEOUT_S)
            if done.returncode != 0:
                raise RemoteUnreachable(
                    f"ssh {self.target}: {_last_line(done.stderr) or 'ssh -G failed'}"
                )
            settings: dict[str, str] = {}
            for line in done.stdout.splitlines():
                key, _, value = line.partition(" ")
                settings.setdefault(key.lower(), value)
            self._settings = settings
        return self._settings

    @property
    def identity(self) -> str:
        """``user@host_port`` as ssh resolves the target (aliases included): one name per
        account, whatever the spelling."""
        settings = self.settings()
        host = settings.get("hostname", self.target.host)
        return f"{settings.get('user', '')}@{host}_{settings.get('port', '22')}"

    def control_path(self) -> str:
        """The master's socket: the user's ``ControlPath`` if the config has one, else ours."""
        configured = self.settings().get("controlpath", "none")
        if configured and configured != "none":
            return configured
        return str(PackagePaths.ssh_control_path(agent_folder(), self.identity))

    # -- the master -------------------------------------------------------------------------

    def ensure(self) -> None:
        """Start the master unless one answers already.

        Raises
        ------
        SshLoginError
            When the login itself fails (no key accepted, unknown host key).
        RemoteUnreachable
            When the host cannot be reached.
        """
        with self._lock:
            if self.alive():
                return
            self._start()

    def alive(self) -> bool:
        """Whether a master answers on the control socket."""
        path = self.control_path()
        if not Path(path).exists():
            return False
        done = self._run(["-S", path, "-O", "check", *self._destination()], timeout=10)
        return done.returncode == 0

    def _start(self) -> None:
        path = self.control_path()
        options = [
            "-f", "-N", "-M", "-S", path,
            "-o", f"ControlPersist={CONTROL_PERSIST_S}",
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        ]  # fmt: skip
        if self.settings().get("serveraliveinterval", "0") == "0":
            interval, count = SERVER_ALIVE
            options += ["-o", f"ServerAliveInterval={interval}"]
            options += ["-o", f"ServerAliveCountMax={count}"]
        with contextlib.suppress(OSError):  # a stale socket of a master that died
            if not self.alive():
                os.unlink(path)
        # -f leaves the master in the background holding ssh's stderr: a file, not a pipe
        # (a pipe would never reach its end while the master lives).
        with tempfile.TemporaryFile() as errors:
            try:
                done = subprocess.run(
                    [_SSH, *options, *self._destination()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=CONNECT_TIMEOUT_S * 4,
                    start_new_session=True,  # a kernel interrupt (SIGINT) is not for ssh
                )
            except subprocess.TimeoutExpired:
                raise RemoteUnreachable(f"ssh {self.target}: no connection after "
                                        f"{CONNECT_TIMEOUT_S * 4} s") from None
            except FileNotFoundError:
                raise RemoteUnreachable("ssh is not installed here (OpenSSH's client)") from None
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        if done.returncode != 0:
            raise login_error(self.target, stderr, path)

    def stop(self) -> None:
        """Ask the master to exit (its sessions end with it); nothing when none runs."""
        with contextlib.suppress(OSError, subprocess.SubprocessError, RemoteUnreachable):
            self._run(["-S", self.control_path(), "-O", "exit", *self._destination()], timeout=10)

    # -- sessions ---------------------------------------------------------------------------

    def session_argv(self, command: str) -> list[str]:
        """The ``ssh`` command line of a session through the master running ``command``."""
        return [
            _SSH, "-S", self.control_path(), "-o", "ControlMaster=no", "-o", "BatchMode=yes",
            "-T", *self._destination(), command,
        ]  # fmt: skip

    def _destination(self) -> list[str]:
        return [*self.target.ssh_options(), "--", self.target.host]

    def _run(self, arguments: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [_SSH, *arguments],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise RemoteUnreachable("ssh is not installed here (OpenSSH's client)") from None
        except subprocess.TimeoutExpired:
            raise RemoteUnreachable(f"ssh {self.target}: no answer within {timeout} s") from None


def login_error(target: SshTarget, stderr: str, control_path: str) -> RemoteUnreachable:
    """The one line that says why ``ssh`` failed, and what to do about it."""
    reason = _last_line(stderr) or "ssh failed without a message"
    by_hand = f"ssh -fNM -S {shlex.quote(control_path)} -o ControlPersist=yes {target.host}"
    if "Permission denied" in stderr or "Too many authentication failures" in stderr:
        return SshLoginError(
            f"ssh {target}: authentication failed ({reason}). Use a key the cluster accepts "
            f"(ssh-copy-id, ssh-agent), or, for a password or a second factor, open the "
            f"connection in a terminal first: {by_hand}"
        )
    if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION" in stderr:
        return SshLoginError(
            f"ssh {target}: the host key is unknown or has changed ({reason}). Run "
            f"`ssh {target.host}` once in a terminal to check it and accept it"
        )
    return RemoteUnreachable(f"ssh {target}: {reason}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(("Warning:", "debug"))]
    return (meaningful or lines or [""])[-1]
