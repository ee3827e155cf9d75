"""The warm launcher: submissions fork controllers from it, with the submitter's context."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.local import agent_client
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
    agent_socket = agent_client.socket_path()
    assert stat.S_ISSOCK(agent_socket.stat().st_mode)
    assert stat.S_IMODE(agent_socket.parent.stat().st_mode) == 0o700
    controller = json.loads(job.paths.local_process.read_text())["pid"]
    # It exits just after the result lands (a live one is checked below).
    wait_for(lambda: not is_alive(controller), "the controller to exit")


def test_a_running_controller_is_a_child_of_the_agent(local: submitit.LocalExecutor) -> None:
    job = local.submit(time.sleep, 30)
    while not job.paths.local_process.exists():
        time.sleep(0.01)
    controller = json.loads(job.paths.local_process.read_text())["pid"]
    agent = _parent_of(controller)
    assert "backends.local.agent" in Path(f"/proc/{agent}/cmdline").read_text()
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
    path = agent_client.socket_path()
    assert path.exists()
    agent_client.stop_agents()
    assert not path.exists()
    assert local.submit(len, "again").result(timeout=60) == 5  # a new agent starts on demand


# -- what a job needs from its process start (item 5 of #17) ---------------------------------------
# A forked controller keeps what its agent read when it started: the dynamic loader's
# variables, sys.path, rlimits, cgroup, CPU affinity, the cloudpickle it imported. When the
# submitter's differ, the job must not be forked from that agent.


def _load_library(name: str) -> str:
    import ctypes

    ctypes.CDLL(name)
    return "loaded"


def _import_value(module: str) -> object:
    import importlib

    return importlib.import_module(module).VALUE


def _open_files_limit() -> tuple[int, int]:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)


def test_a_library_path_set_after_the_agent_started_reaches_the_job(
    local: submitit.LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.submit(len, "warm").result(timeout=60)  # an agent runs, started without the path
    library = tmp_path / "lib"  # as `module load` would add one: a real library, renamed
    library.mkdir()
    (library / "libjscprobe.so").write_bytes(Path("/lib/x86_64-linux-gnu/libz.so.1").read_bytes())
    monkeypatch.setenv("LD_LIBRARY_PATH", str(library))
    assert local.submit(_load_library, "libjscprobe.so").result(timeout=60) == "loaded"


def test_a_pythonpath_set_after_the_agent_started_reaches_the_job(
    local: submitit.LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.submit(len, "warm").result(timeout=60)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "jsc_probe_module.py").write_text("VALUE = 42\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    assert local.submit(_import_value, "jsc_probe_module").result(timeout=60) == 42


def test_the_submitters_rlimits_reach_the_job(local: submitit.LocalExecutor) -> None:
    import resource

    local.submit(len, "warm").result(timeout=60)
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = (min(before[0], 4096) - 7, before[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, lowered)
    try:
        limit = local.submit(_open_files_limit).result(timeout=60)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
    assert tuple(limit) == lowered


OLD_AGENT = """
import sys
import cloudpickle
cloudpickle.__version__ = "0.0-old"  # an agent started before cloudpickle was upgraded
from jupyter_slurm_ckpt.backends.local import agent, agent_client
agent.serve(agent_client.socket_path())
"""


def test_an_agent_with_another_cloudpickle_is_not_used(local: submitit.LocalExecutor) -> None:
    agent_client.stop_agents()
    old = subprocess.Popen([sys.executable, "-c", OLD_AGENT])
    try:
        # It serves where an agent of *its* cloudpickle is looked for.
        wait_for(lambda: any(agent_client.agent_folder().glob("agent-*.sock")), "the old agent")
        job = local.submit(len, "four")
        # Before the fix it forked the job, which then refused the payload ("written by
        # cloudpickle 3..., but this is cloudpickle 0.0-old").
        assert job.result(timeout=60) == 4
    finally:
        old.terminate()
        old.wait(timeout=30)
