"""The world of the SSH backend's tests: a real sshd, a laptop user, a cluster user, real
Slurm (the fixtures that set it up: ``conftest.py``).

``tests/ssh/sshd.sh start`` (run here, idempotent) gives this machine Debian's OpenSSH server
on 127.0.0.1, a cluster user whose home holds the job folders and a Python environment with
this package, and a laptop user whose ``ssh login-node`` reaches the cluster user with its
key. The tests' kernels run as the laptop user (``runuser``), who cannot read the cluster
user's home: everything they do to the jobs goes through SSH. The test Slurm cluster
(``tests/slurm/cluster.sh``) is behind it: the cluster user's processes submit with sbatch.

The test process itself is root: it plays the frontend of those kernels (jupyter_client), cuts
the connection (stops sshd) and looks at the cluster side's files to check what happened.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from test_widget_kernel import Frontend

HERE = Path(__file__).resolve().parent
SSHD = HERE / "sshd.sh"
#: What the laptop's ~/.ssh/config calls the cluster's login node.
HOST = "login-node"
KERNEL_SPEC = "jsc-laptop"


#: Every test module here: ``pytestmark = SSH_TESTS`` (the Slurm cluster is behind sshd).
SSH_TESTS = [pytest.mark.ssh, pytest.mark.slurm]


@dataclass(frozen=True)
class SshWorld:
    """The users and the sshd of the tests."""

    laptop: pwd.struct_passwd
    cluster: pwd.struct_passwd
    directory: Path  # sshd's configuration, keys and log

    @property
    def laptop_python(self) -> str:
        return f"{self.laptop.pw_dir}/env/bin/python"

    def cluster_path(self, folder: str) -> Path:
        """A folder of the cluster user's home, as the cluster's side sees it."""
        return Path(self.cluster.pw_dir) / folder

    def stop_sshd(self) -> None:
        """Cut every connection (the listener and its sessions): nobody reaches the cluster."""
        run_checked("bash", str(SSHD), "stop")

    def start_sshd(self) -> None:
        run_checked("bash", str(SSHD), "start")

    def remote_processes(self) -> list[int]:
        """The pids of the remote sides (``...ssh.remote``) running as the cluster user."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid != self.cluster.pw_uid:
                    continue
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"jupyter_slurm_ckpt.backends.ssh.remote" in argv:
                    found.append(int(entry.name))
        return found

    def cancel_cluster_jobs(self) -> None:
        """No test leaves a job of the cluster user in Slurm."""
        subprocess.run(["scancel", "-u", self.cluster.pw_name], capture_output=True, timeout=30)


def run_checked(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


class LaptopKernelManager(KernelManager):
    """A kernel run by the laptop user: its connection file is handed to that user."""

    laptop_uid = 0
    laptop_gid = 0

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        os.chown(self.connection_file, self.laptop_uid, self.laptop_gid)


class Laptop:
    """A kernel of the laptop user, and the frontend that drives it (see ``Frontend``)."""

    def __init__(self, world: SshWorld, kernel_dir: Path, cwd: Path) -> None:
        self.world = world
        self.cwd = cwd
        specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)])
        self.manager = LaptopKernelManager(kernel_name=KERNEL_SPEC, kernel_spec_manager=specs)
        self.manager.laptop_uid = world.laptop.pw_uid
        self.manager.laptop_gid = world.laptop.pw_gid
        self.manager.connection_file = str(cwd / f".kernel-{uuid.uuid4().hex}.json")
        self.frontend: Frontend | None = None

    def start(self) -> Frontend:
        laptop = self.world.laptop
        runtime = self.cwd / ".runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.chown(runtime, laptop.pw_uid, laptop.pw_gid)
        env = {
            "HOME": laptop.pw_dir,
            "USER": laptop.pw_name,
            "LOGNAME": laptop.pw_name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "XDG_RUNTIME_DIR": str(runtime),
            "LANG": "C.UTF-8",
        }
        self.manager.start_kernel(cwd=str(self.cwd), env=env)
        self.frontend = Frontend(self.manager)
        return self.frontend

    def restart(self) -> Frontend:
        """A kernel restart, as the notebook's button does it: a fresh process, same user."""
        assert self.frontend is not None
        self.frontend.client.stop_channels()
        self.manager.restart_kernel(now=True)
        self.frontend = Frontend(self.manager)
        return self.frontend

    def stop(self) -> None:
        if self.frontend is not None:
            self.frontend.client.stop_channels()
        with contextlib.suppress(Exception):
            self.manager.shutdown_kernel(now=True)
