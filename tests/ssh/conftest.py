"""Fixtures of the SSH backend's tests (the world they run in: ``ssh_world.py``)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ssh_world import KERNEL_SPEC, SSHD, Laptop, SshWorld, run_checked


@pytest.fixture(scope="session")
def ssh_world(slurm_cluster: Any) -> Iterator[SshWorld]:
    """sshd up with both users (started here when it is not, and then stopped afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("the SSH tests set up users and an sshd: run them as root (CI does)")
    was_up = subprocess.run(["bash", str(SSHD), "status"], capture_output=True).returncode == 0
    exports = run_checked("bash", str(SSHD), "start")
    env = dict(item.split("=", 1) for item in exports.split()[1:] if "=" in item)
    world = SshWorld(
        laptop=pwd.getpwnam(env["JSC_SSH_LAPTOP_USER"]),
        cluster=pwd.getpwnam(env["JSC_SSH_CLUSTER_USER"]),
        directory=Path(env["JSC_SSH_DIR"]),
    )
    yield world
    world.cancel_cluster_jobs()
    if not was_up:
        world.stop_sshd()


@pytest.fixture
def remote_folder(ssh_world: SshWorld, request: pytest.FixtureRequest) -> Iterator[str]:
    """A job folder of its own on the cluster (in the cluster user's home), removed after."""
    name = f"tests/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    yield name
    ssh_world.cancel_cluster_jobs()
    shutil.rmtree(ssh_world.cluster_path(name), ignore_errors=True)


@pytest.fixture(scope="session")
def laptop_kernel_dir(ssh_world: SshWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec whose kernel is the laptop user's Python, started as that user."""
    kernels = tmp_path_factory.mktemp("laptop-jupyter") / "kernels"
    spec = kernels / KERNEL_SPEC
    spec.mkdir(parents=True)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    argv = [
        *(runuser, "-u", ssh_world.laptop.pw_name, "--", ssh_world.laptop_python),
        *("-m", "ipykernel_launcher", "-f", "{connection_file}"),
    ]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "laptop", "language": "python"})
    )
    return kernels


@pytest.fixture
def laptop(ssh_world: SshWorld, laptop_kernel_dir: Path) -> Iterator[Laptop]:
    """A laptop kernel in a notebook folder of its own (in the laptop user's home)."""
    home = Path(ssh_world.laptop.pw_dir)
    cwd = home / "notebooks" / uuid.uuid4().hex[:8]
    cwd.mkdir(parents=True)
    for folder in (home / "notebooks", cwd):
        os.chown(folder, ssh_world.laptop.pw_uid, ssh_world.laptop.pw_gid)
    machine = Laptop(ssh_world, laptop_kernel_dir, cwd)
    machine.start()
    yield machine
    machine.stop()
    shutil.rmtree(cwd, ignore_errors=True)
