"""A warm launcher for local jobs: it forks job controllers instead of starting Python each time.

Starting a controller with ``python -m`` costs a Python start-up (about 50 ms of CPU); fifty
submissions at once make fifty interpreters boot on the same cores, and each ``submit`` waits
for its child to be scheduled. The agent is one long-lived process per user and start context
that has imported the controller already: a submission sends it one small request over a Unix
socket and it forks the controller (a millisecond), with the submitter's working directory,
environment and umask. What a fork cannot change (what the dynamic loader and Python read at
start-up, rlimits, cgroup, CPU affinity, the imported code and cloudpickle) is part of the
agent's key: a submitter whose context differs gets an agent started from its own. So the
forked controller is exactly the process ``python -m
jupyter_slurm_ckpt.backends.local_controller`` would have been, in its own session.

Safety: the socket lives in a 0700 folder of the user's (a real folder: a symbolic link in its
place is refused), the agent serves only peers of its own uid, and the client sends nothing
before it has checked that its peer runs as itself (``SO_PEERCRED``, both ways). It exits after
:data:`IDLE_EXIT_S` without requests. When anything about the agent fails, the submission falls
back to starting the controller directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
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

import cloudpickle

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


# Environment variables read once, when a process starts (by the dynamic loader, Python's
# start-up, the C library): a forked job keeps its agent's, whatever its request says.
_STARTUP_VARIABLES = ("LD_", "PYTHON", "GLIBC_TUNABLES", "MALLOC_", "LANG", "LC_", "TZ")
_RLIMITS = sorted(
    value for name, value in vars(resource).items() if name.startswith("RLIMIT_")
)


def _agent_key() -> str:
    """What a forked job inherits from its agent rather than from its request.

    The code it runs (the interpreter, our modules, the cloudpickle it imported) and the
    process context fixed at start-up (start-up variables, rlimits, cgroup, CPU affinity,
    priority). A submitter whose key differs from an agent's gets an agent of its own,
    started from its own context.
    """
    digest = hashlib.sha1(sys.executable.encode())
    for path in _CODE_FILES:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            digest.update(f"{path}:{info.st_mtime_ns}:{info.st_size}".encode())
    startup = sorted(item for item in os.environ.items() if item[0].startswith(_STARTUP_VARIABLES))
    context = [
        cloudpickle.__version__,
        startup,
        [resource.getrlimit(limit) for limit in _RLIMITS],
        sorted(os.sched_getaffinity(0)),
        os.getpriority(os.PRIO_PROCESS, 0),
    ]
    digest.update(json.dumps(context).encode())
    with contextlib.suppress(OSError):
        digest.update(Path("/proc/self/cgroup").read_bytes())
    return digest.hexdigest()[:16]


def agent_folder() -> Path:
    """The user's private folder for agent sockets (created 0700, checked like a job folder).

    Its name may sit in the shared /tmp: one that is a symbolic link is refused (another user
    could have created it first).
    """
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"jupyter-slurm-ckpt-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, PRIVATE_DIR_MODE)
    check_folder_is_safe(folder, follow_symlinks=False)
    return folder


def socket_path() -> Path:
    """The socket of the agent whose forked jobs run as this process would start them."""
    return agent_folder() / f"agent-{_agent_key()}.sock"


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


class ForeignAgentError(ConnectionError):
    """The socket is served by another user's process: nothing was sent to it."""


def _ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(_CONNECT_TIMEOUT_S)
        connection.connect(str(path))
        # The request holds the whole environment (tokens, keys): for our own agent only.
        owner = _peer_uid(connection)
        if owner != os.getuid():
            raise ForeignAgentError(f"{path} is served by uid {owner}, not by you")
        _send(connection, request)
        return _receive(connection)


def _start_agent(path: Path) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local_agent", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the kernel's process group, holds none of its pipes
        close_fds=True,
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    # An agent that finds itself unlike its key (see serve) exits at once: stop waiting then.
    while not path.exists() and agent.poll() is None and time.monotonic() < deadline:
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
            try:
                _ask(path, {"op": "stop"})
            except (OSError, ValueError):  # nobody answers: a killed agent's socket
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
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
    """Answer launch requests on ``path`` until idle for :data:`IDLE_EXIT_S` or stopped.

    Returns at once, serving nothing, when this process does not have the key ``path`` names
    (e.g. cloudpickle was upgraded since the submitter imported it): its jobs would not run
    as that submitter's would.
    """
    if path.name != f"agent-{_agent_key()}.sock":
        return
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
