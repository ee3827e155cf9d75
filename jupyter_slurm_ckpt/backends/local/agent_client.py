"""The submitting side's way to the user's warm agent (see ``agent``): its name, its protocol.

:func:`launch` asks the agent that matches this process's context (:func:`socket_path`, named
after its key) to fork a controller, starting that agent first if there is none; when anything
about the agent fails, the caller starts the controller itself. The agent speaks the same
protocol (length-prefixed JSON over a Unix socket) from the other end.

Safety: the socket lives in a 0700 folder of the user's (a real folder: a symbolic link in its
place is refused), and the client sends nothing before it has checked that its peer runs as
itself (``SO_PEERCRED``): a request holds the submitter's whole environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle

from ...core.errors import JobFolderError
from ...core.files import PRIVATE_DIR_MODE, check_folder_is_safe
from ...core.paths import PackagePaths

CONNECT_TIMEOUT_S = 5.0
_START_TIMEOUT_S = 10.0
_MAX_REQUEST_BYTES = 16 * 1024 * 1024
#: The module the agent process runs (``python -m``).
AGENT_MODULE = "jupyter_slurm_ckpt.backends.local.agent"

# The code a forked controller runs: a change to any of it must not be served by an old agent.
_PACKAGE = Path(__file__).resolve().parents[2]
_CODE_FILES = sorted(
    str(path)
    for path in [
        *_PACKAGE.glob("*.py"),
        *(_PACKAGE / "core").rglob("*.py"),
        *(_PACKAGE / "backends").rglob("*.py"),
    ]
)


# Environment variables read once, when a process starts (by the dynamic loader, Python's
# start-up, the C library): a forked job keeps its agent's, whatever its request says.
_STARTUP_VARIABLES = ("LD_", "PYTHON", "GLIBC_TUNABLES", "MALLOC_", "LANG", "LC_", "TZ")
_RLIMITS = sorted(
    value for name, value in vars(resource).items() if name.startswith("RLIMIT_")
)


def agent_key() -> str:
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
    folder = PackagePaths.agent_folder(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, PRIVATE_DIR_MODE)
    check_folder_is_safe(folder, follow_symlinks=False)
    return folder


def socket_path() -> Path:
    """The socket of the agent whose forked jobs run as this process would start them."""
    return PackagePaths.agent_socket(agent_folder(), agent_key())


def send(connection: socket.socket, message: dict[str, Any]) -> None:
    """Send one message: its length (4 bytes, network order), then its JSON."""
    data = json.dumps(message).encode()
    connection.sendall(struct.pack("!I", len(data)) + data)


def receive(connection: socket.socket) -> dict[str, Any]:
    """Receive one message sent by :func:`send` (a JSON object of at most 16 MiB)."""
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


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    return int(struct.unpack("3i", credentials)[1])


# -- asking the agent ----------------------------------------------------------------------------


class ForeignAgentError(ConnectionError):
    """The socket is served by another user's process: nothing was sent to it."""


def _ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(CONNECT_TIMEOUT_S)
        connection.connect(str(path))
        # The request holds the whole environment (tokens, keys): for our own agent only.
        owner = peer_uid(connection)
        if owner != os.getuid():
            raise ForeignAgentError(f"{path} is served by uid {owner}, not by you")
        send(connection, request)
        return receive(connection)


def _start_agent(path: Path) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", AGENT_MODULE, str(path)],
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
        for path in agent_folder().glob(PackagePaths.AGENT_SOCKETS):
            try:
                _ask(path, {"op": "stop"})
            except (OSError, ValueError):  # nobody answers: a killed agent's socket
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            while path.exists() and time.monotonic() < deadline:  # gone when this returns
                time.sleep(0.005)


def _current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


