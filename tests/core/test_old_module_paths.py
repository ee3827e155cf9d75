"""Files written by earlier versions name module paths that must keep working.

Payloads and results pickle our classes *by reference* (module path and name), and the Slurm
batch scripts and the local backend start processes by module path (``python -m ...``). Jobs in
flight, requeued jobs and pickles left on disk outlive an upgrade of the package, so those
paths stay importable (and runnable) after the modules moved.

``data/payload_before_the_move.pkl`` was written by the package as it was laid out before it
was split into packages by stage (commit 358174d), with :func:`_fixture_object`'s object:
each class it holds is named there under its old module path.
"""

from __future__ import annotations

import json
import operator
import os
import pickletools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.errors import FailedJobError, UncompletedJobError
from jupyter_slurm_ckpt.core.files import ensure_private_folder
from jupyter_slurm_ckpt.core.helpers import CommandFunction, FunctionSequence
from jupyter_slurm_ckpt.core.info import JobInfo
from jupyter_slurm_ckpt.core.paths import JobPaths
from jupyter_slurm_ckpt.core.snapshot import RsyncSnapshot
from jupyter_slurm_ckpt.verify import CheckpointableRunInFolder, RunInFolder

FIXTURE = Path(__file__).parent / "data" / "payload_before_the_move.pkl"
#: The module paths the fixture's pickle names.
OLD_MODULES = {
    "jupyter_slurm_ckpt.backends.debug",
    "jupyter_slurm_ckpt.backends.local",
    "jupyter_slurm_ckpt.backends.slurm",
    "jupyter_slurm_ckpt.core.errors",
    "jupyter_slurm_ckpt.core.helpers",
    "jupyter_slurm_ckpt.core.snapshot",
    "jupyter_slurm_ckpt.verify",
}


def _fixture_object() -> Any:
    """What the fixture holds (how it was made: ``payload.dump(_fixture_object(), FIXTURE)``)."""
    sequence = FunctionSequence()
    sequence.add(operator.add, 1, 2)
    sequence.add(CommandFunction(["true"], verbose=False))
    folder = "/nonexistent/slurm_jobs"
    return submitit.DelayedSubmission(
        CheckpointableRunInFolder(sequence, "/nonexistent/verify/run"),
        [
            submitit.LocalJob(folder, "L1"),
            submitit.SlurmJob(folder, "12_3"),
            submitit.DebugJob(folder, "DEBUG2", 0),
        ],
        RunInFolder(operator.mul, "/nonexistent/verify/other"),
        errors=(FailedJobError("failed"), UncompletedJobError("uncompleted")),
        snapshot=RsyncSnapshot,
    )


def _module_names(stream: bytes) -> set[str]:
    """The module paths a pickle stream names (the strings its globals are looked up by)."""
    return {
        str(argument)
        for opcode, argument, _ in pickletools.genops(stream)
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE")
        and str(argument).startswith("jupyter_slurm_ckpt.")
    }


def test_a_payload_pickled_with_the_old_module_paths_still_loads() -> None:
    header, _, body = FIXTURE.read_bytes().partition(b"\n")
    assert json.loads(header)["format"] == payload.FORMAT
    assert _module_names(body) == OLD_MODULES
    # The header names the Python and cloudpickle that wrote the file (checked at load); a
    # pickle of nothing but importable objects is the same under any of them.
    loaded = payload.deserialize(payload.header() + body, str(FIXTURE))
    expected = _fixture_object()
    assert isinstance(loaded, submitit.DelayedSubmission)
    wrapper = loaded.function
    assert type(wrapper) is CheckpointableRunInFolder
    assert wrapper.folder == "/nonexistent/verify/run"
    assert isinstance(wrapper.function, FunctionSequence)
    assert wrapper.function.delayed_functions[0].result() == 3
    assert isinstance(wrapper.function.delayed_functions[1].function, CommandFunction)
    jobs, other = loaded.args
    assert [type(job) for job in jobs] == [type(job) for job in expected.args[0]]
    assert [(job.job_id, job.paths) for job in jobs] == [
        (job.job_id, job.paths) for job in expected.args[0]
    ]
    assert type(other) is RunInFolder and other.function is operator.mul
    errors = loaded.kwargs["errors"]
    assert [type(error) for error in errors] == [FailedJobError, UncompletedJobError]
    assert loaded.kwargs["snapshot"] is RsyncSnapshot


def test_a_fresh_payload_of_the_same_objects_loads_too(tmp_path: Path) -> None:
    path = tmp_path / "new.pkl"
    payload.dump(_fixture_object(), path)
    loaded = payload.load(path)
    assert [job.job_id for job in loaded.args[0]] == ["L1", "12_3", "DEBUG2"]


def _write_job(folder: Path, job_id: str, cluster: str, function: Any, *args: Any) -> JobPaths:
    """A submitted job's files, as an earlier version's executor wrote them."""
    ensure_private_folder(folder)
    paths = JobPaths(folder, job_id)
    payload.dump(submitit.DelayedSubmission(function, *args), paths.submitted_pickle)
    JobInfo(job_id, cluster, str(folder)).write(paths.info)
    return paths


def test_the_old_slurm_entry_point_still_runs_a_job(tmp_path: Path) -> None:
    # A requeued Slurm job re-runs the batch script it was submitted with: scripts written by
    # earlier versions `exec python -m jupyter_slurm_ckpt.backends.slurm_job FOLDER`. Run
    # here without Slurm: the worker needs nothing of it until a signal comes.
    folder = tmp_path / "jobs"
    paths = _write_job(folder, "4242", "slurm", operator.add, 20, 22)
    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.slurm_job", str(folder)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert payload.load(paths.result_pickle) == ("success", 42)


def test_the_old_local_controller_entry_point_still_runs_a_job(tmp_path: Path) -> None:
    # A kernel still running an earlier version starts controllers by this module path.
    folder = tmp_path / "jobs"
    paths = _write_job(folder, "L7", "local", operator.mul, 6, 7)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local_controller",
         str(folder), "1", "L7"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert payload.load(paths.result_pickle) == ("success", 42)


def test_the_old_local_agent_entry_point_still_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    # ... and starts its agent by this one.
    from jupyter_slurm_ckpt.backends.local.agent_client import socket_path, stop_agents

    runtime = Path(tempfile.mkdtemp(prefix="jsc-"))  # short: a socket path has 107 bytes
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # this test's agents only
    path = socket_path()
    agent = subprocess.Popen(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local_agent", str(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.exists(), agent.communicate()[1]
        stop_agents()  # answered by the agent: it served the request, then leaves
        assert agent.wait(timeout=120) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        shutil.rmtree(runtime, ignore_errors=True)
