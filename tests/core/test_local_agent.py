"""The warm launcher: submissions fork controllers from it, with the submitter's context."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import local_agent
from jupyter_slurm_ckpt.backends.processes import is_alive


def _parent_of(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2 :].split()[1])


def _context() -> dict[str, object]:
    return {"cwd": os.getcwd(), "marker": os.environ.get("JSC_TEST_MARKER"), "umask": os.umask(0)}


def test_controllers_are_forked_by_the_agent_with_the_submitters_context(
    local: submitit.LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("JSC_TEST_MARKER", "set just before submitting")
    old_mask = os.umask(0o027)
    try:
        job = local.submit(_context)
        context = job.result(timeout=60)
    finally:
        os.umask(old_mask)
    assert context == {"cwd": str(workdir), "marker": "set just before submitting", "umask": 0o027}
    agent_socket = local_agent.socket_path()
    assert stat.S_ISSOCK(agent_socket.stat().st_mode)
    assert stat.S_IMODE(agent_socket.parent.stat().st_mode) == 0o700
    controller = json.loads(job.paths.local_process.read_text())["pid"]
    # The result lands just before the controller exits: it is gone soon after.
    wait_for(lambda: not is_alive(controller), "the finished job's controller to exit")


def test_a_running_controller_is_a_child_of_the_agent(local: submitit.LocalExecutor) -> None:
    job = local.submit(time.sleep, 30)
    while not job.paths.local_process.exists():
        time.sleep(0.01)
    controller = json.loads(job.paths.local_process.read_text())["pid"]
    agent = _parent_of(controller)
    assert "local_agent" in Path(f"/proc/{agent}/cmdline").read_text()
    assert os.getsid(controller) == controller  # its own session, like a direct launch
    job.cancel()


def test_submission_falls_back_to_a_direct_start_without_a_private_folder(
    local: submitit.LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsafe = tmp_path / "runtime"
    unsafe.mkdir(mode=0o777)
    os.chmod(unsafe, 0o777)
    (unsafe / f"jupyter-slurm-ckpt-{os.getuid()}").mkdir()
    os.chmod(unsafe / f"jupyter-slurm-ckpt-{os.getuid()}", 0o777)  # others could plant a socket
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(unsafe))
    job = local.submit(len, "four")
    assert job.result(timeout=60) == 4
    assert job._launcher is not None  # started with python -m, not through an agent


def test_stop_agents_stops_them(local: submitit.LocalExecutor) -> None:
    local.submit(len, "x").result(timeout=60)
    path = local_agent.socket_path()
    assert path.exists()
    local_agent.stop_agents()
    assert not path.exists()
    assert local.submit(len, "again").result(timeout=60) == 5  # a new agent starts on demand
