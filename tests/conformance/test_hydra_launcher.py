"""hydra-submitit-launcher 1.2.0 on jupyter_slurm_ckpt through the ``as_submitit`` switch: its
own tests (see ``hydra_launcher``; each test's outcome is printed at the end of the run), and a
sweep with one job preempted, locally and on the real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROGRAMS, cancel_leftover_jobs, wait_for

import jupyter_slurm_ckpt as submitit

from .hydra_launcher import build, install, run
from .submitit_suite import LAUNCHER_RESULTS


@pytest.fixture(scope="session")
def hydra_installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hydra-core, the launcher and the real submitit, installed from PyPI for this run."""
    return install(tmp_path_factory.mktemp("hydra-site"))


@pytest.mark.timeout(1800)
def test_hydra_submitit_launchers_own_tests_pass_through_the_switch(
    hydra_installed: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}  # submitit_local
    outcome = run(build(tmp_path / "suite"), hydra_installed, env)
    LAUNCHER_RESULTS.update(outcome.outcomes)
    assert outcome.outcomes, f"no test ran:\n{outcome.output[-3000:]}"
    failed = [f"{name}: {outcome.messages[name]}" for name in outcome.names("failed", "skipped")]
    assert not failed, "\n".join(failed) + f"\n\n{outcome.output[-3000:]}"
    assert outcome.count("passed") == 23


def sweep_with_one_job_preempted(launcher: str, installed: Path, tmp_path: Path) -> None:
    """Sweep 3 jobs; preempt task 2's job while it runs; all 3 complete, task 2 after one
    requeue (its job's events say so), the sweep's command exits 0."""
    shared = tmp_path / "shared"
    shared.mkdir()
    python_path = os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    command = [
        sys.executable, "-m", "jupyter_slurm_ckpt.as_submitit",
        str(PROGRAMS / "hydra_sweep_app.py"),
        "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra/launcher={launcher}",
        "hydra.launcher.timeout_min=10", f"+shared={shared}", "+task=1,2,3",
    ]  # fmt: skip
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        marker = shared / "marker_2_0.json"
        wait_for(lambda: marker.exists() or sweep.poll() is not None, "task 2's job", 180)
        assert sweep.poll() is None, sweep.communicate()[0]
        where = json.loads(marker.read_text())
        job = submitit.Job(where["folder"], where["job_id"])
        job._interrupt()
        wait_for(lambda: (shared / "marker_2_1.json").exists(), "task 2's second run", 180)
        (shared / "gate").touch()
        output, _ = sweep.communicate(timeout=300)
    finally:
        (shared / "gate").touch()
        if sweep.poll() is None:
            sweep.kill()
        cancel_leftover_jobs(tmp_path / "sweep")
    assert sweep.returncode == 0, output
    results = {task: json.loads((shared / f"result_{task}.json").read_text()) for task in (1, 2, 3)}
    assert {task: r["restart_count"] for task, r in results.items()} == {1: 0, 2: 1, 3: 0}
    requeue = ("signal", "checkpoint", "requeued")
    assert [event["event"] for event in job.events() if event["event"] in requeue] == list(requeue)
    assert job.state == "COMPLETED"


def test_a_launcher_sweep_with_one_job_preempted_locally(
    hydra_installed: Path, tmp_path: Path
) -> None:
    sweep_with_one_job_preempted("submitit_local", hydra_installed, tmp_path)


@pytest.mark.slurm
def test_a_launcher_sweep_with_one_job_preempted_on_slurm(
    hydra_installed: Path, tmp_path: Path
) -> None:
    sweep_with_one_job_preempted("submitit_slurm", hydra_installed, tmp_path)
