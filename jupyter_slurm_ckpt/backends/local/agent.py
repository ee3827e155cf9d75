"""A warm launcher for local jobs: it forks job controllers instead of starting Python each time.

Starting a controller with ``python -m`` costs a Python start-up (about 50 ms of CPU); fifty
submissions at once make fifty interpreters boot on the same cores, and each ``submit`` waits
for its child to be scheduled. The agent is one long-lived process per user and start context
(``python -m jupyter_slurm_ckpt.backends.local.agent SOCKET``) that has imported the controller
already: a submission sends it one small request over a Unix socket (``agent_client``) and it
forks the controller (a millisecond), with the submitter's working directory, environment and
umask. What a fork cannot change (what the dynamic loader and Python read at start-up, rlimits,
cgroup, CPU affinity, the imported code and cloudpickle) is part of the agent's key: a
submitter whose context differs gets an agent started from its own. A forked controller still
differs from one started with ``python -m`` in what a process keeps of its parent besides
those: the interpreter's own state (``sys.argv``, ``sys.flags``, the modules imported so far),
none of which a job's result depends on.

Safety: the agent serves only peers of its own uid (``SO_PEERCRED``), and its socket is made
0600 in the user's 0700 agent folder before it is given its name. It exits after
:data:`IDLE_EXIT_S` without requests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ...core.files import open_private_append
from ...core.paths import PackagePaths
from .. import processes
from . import controller
from .agent_client import CONNECT_TIMEOUT_S, agent_key, peer_uid, receive, send

IDLE_EXIT_S = 300.0


def _reap(signum: int, frame: object) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _fork_controller(request: dict[str, Any], listener: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid

    def work() -> int:
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
        return controller.main([str(item) for item in request["argv"]])

    processes.run_child(work)


def serve(path: Path) -> None:
    """Answer launch requests on ``path`` until idle for :data:`IDLE_EXIT_S` or stopped.

    Returns at once, serving nothing, when this process does not have the key ``path`` names
    (e.g. cloudpickle was upgraded since the submitter imported it): its jobs would not run
    as that submitter's would.
    """
    if path != PackagePaths.agent_socket(path.parent, agent_key()):
        return
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = PackagePaths.agent_socket_before_listening(path, os.getpid())
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
    connection.settimeout(CONNECT_TIMEOUT_S)
    try:
        if peer_uid(connection) != os.getuid():
            return True  # another user's process: no answer at all
        request = receive(connection)
        if request.get("op") == "stop":
            send(connection, {"stopping": True})
            return False
        pid = _fork_controller(request, listener)
        send(connection, {"pid": pid})
    except (OSError, ValueError, KeyError) as error:
        with contextlib.suppress(OSError):
            send(connection, {"error": f"{type(error).__name__}: {error}"})
    return True


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
