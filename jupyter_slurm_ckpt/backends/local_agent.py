"""A warm launcher for local jobs: it forks job controllers instead of starting Python each time.

Starting a controller with ``python -m`` costs a Python start-up (about 50 ms of CPU); fifty
submissions at once make fifty interpreters boot on the same cores, and each ``submit`` waits
for its child to be scheduled. The agent is one long-lived process per user and code version
that has imported the controller already: a submission sends it one small request over a Unix
socket and it forks the controller (a millisecond), with the submitter's working directory,
environment and umask. The forked controller is exactly the process ``python -m
jupyter_slurm_ckpt.backends.local_controller`` would have been, in its own session.

Safety: the socket lives in a 0700 folder of the user's, and the agent serves only peers of its
own uid (``SO_PEERCRED``). It exits after :data:`IDLE_EXIT_S` without requests. When anything
about the agent fails, the submission falls back to starting the controller directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ..core.errors import JobFolderError
from ..core.files import PRIVATE_DIR_MODE, check_folder_is_safe, open_private_append
from . import local_controller

IDLE_EXIT_S = 300.0
_CONNECT_TIMEOUT_S = 5.0
_START_TIMEOUT_S = 10.0
_MAX_REQUEST_BYTES = 16 * 1024 * 1024

# The code a forked controller runs: a change to any of it must not be served by an old agent.
_CODE_FILES = sorted(
    str(path)
    for folder in ("core", "backends")
    for path in (Path(__file__).resolve().parents[1] / folder).glob("*.py")
)


def _code_signature() -> str:
    digest = hashlib.sha1(sys.executable.encode())
    for path in _CODE_FILES:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            digest.update(f"{path}:{info.st_mtime_ns}:{info.st_size}".encode())
    return digest.hexdigest()[:16]


def agent_folder() -> Path:
    """The user's private folder for agent sockets (created 0700, checked like a job folder)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"jupyter-slurm-ckpt-{os.getuid()}"
    folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    check_folder_is_safe(folder)
    return folder


def socket_path() -> Path:
    """The socket of the agent that runs this Python and this version of the code."""
    return agent_folder() / f"agent-{_code_signature()}.sock"


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    connection.sendall(struct.pack("!I", len(data)) + data)


def _receive(connection: socket.socket) -> dict[str, Any]:
    header = _receive_exactly(connection, 4)
    (size,) = struct.unpack("!I", header)
    if size > _MAX_REQUEST_BYTES:
        raise ValueError(f"request of {size} bytes refused")
    message = json.loads(_receive_exactly(connection, size))
    if not isinstance(message, dict):
        raise ValueError("a request is a JSON object")
    return message


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        chunks += chunk
    return bytes(chunks)


# -- the submitting side -------------------------------------------------------------------------


def _ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(_CONNECT_TIMEOUT_S)
        connection.connect(str(path))
        _send(connection, request)
        return _receive(connection)


def _start_agent(path: Path) -> None:
    subprocess.Popen(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local_agent", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the kernel's process group, holds none of its pipes
        close_fds=True,
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def launch(controller_argv: list[str], log: Path) -> int | None:
    """Have the agent fork a controller for ``controller_argv``; returns its pid, or None.

    None means the agent could not be used (the caller then starts the controller itself).
    """
    request = {
        "op": "launch",
        "argv": controller_argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": _current_umask(),
        "log": str(log),
    }
    try:
        path = socket_path()
    except (OSError, JobFolderError):  # no private place for a socket: launch directly
        return None
    for attempt in range(2):
        try:
            answer = _ask(path, request)
            pid = answer.get("pid")
            return pid if isinstance(pid, int) else None
        except (OSError, ValueError):
            if attempt == 0:
                with contextlib.suppress(OSError):
                    path.unlink()  # a dead agent's socket
                _start_agent(path)
    return None


def stop_agents() -> None:
    """Ask every agent of this user to exit now (running jobs are not affected)."""
    with contextlib.suppress(OSError, JobFolderError):
        for path in agent_folder().glob("agent-*.sock"):
            with contextlib.suppress(OSError, ValueError):
                _ask(path, {"op": "stop"})
            deadline = time.monotonic() + _CONNECT_TIMEOUT_S
            while path.exists() and time.monotonic() < deadline:  # gone when this returns
                time.sleep(0.005)


def _current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


# -- the agent -------------------------------------------------------------------------------------


def _peer_uid(connection: socket.socket) -> int:
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    return int(struct.unpack("3i", credentials)[1])


def _reap(signum: int, frame: object) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _fork_controller(request: dict[str, Any], listener: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        listener.close()
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # as `python -m` from the submitter's directory would
        null = os.open(os.devnull, os.O_RDONLY)
        log = open_private_append(Path(request["log"]))
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        code = local_controller.main([str(item) for item in request["argv"]])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def serve(path: Path) -> None:
    """Answer launch requests on ``path`` until idle for :data:`IDLE_EXIT_S` or stopped."""
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    listener.bind(str(temporary))
    os.chmod(temporary, 0o600)
    listener.listen(64)
    os.replace(temporary, path)  # clients see a socket only once it listens
    own_inode = os.stat(path).st_ino
    listener.settimeout(IDLE_EXIT_S)
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                return
            except InterruptedError:
                continue
            with connection:
                if not _serve_one(connection, listener):
                    return
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == own_inode:  # not a newer agent's socket
                path.unlink()
        listener.close()


def _serve_one(connection: socket.socket, listener: socket.socket) -> bool:
    """Handle one request; False when the agent should stop."""
    connection.settimeout(_CONNECT_TIMEOUT_S)
    try:
        if _peer_uid(connection) != os.getuid():
            return True  # another user's process: no answer at all
        request = _receive(connection)
        if request.get("op") == "stop":
            _send(connection, {"stopping": True})
            return False
        pid = _fork_controller(request, listener)
        _send(connection, {"pid": pid})
    except (OSError, ValueError, KeyError) as error:
        with contextlib.suppress(OSError):
            _send(connection, {"error": f"{type(error).__name__}: {error}"})
    return True


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
