"""submitit's Slurm parameters on the real cluster: ``scontrol`` shows Slurm got each of them.

The same names as submitit's (``slurm_job_name``, ``slurm_mem``, ``slurm_time``...), through
``AutoExecutor``; ``setup``/``teardown`` are checked in the batch script Slurm holds and by what
they do (the setup's export reaches the job; the teardown runs after it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import slurm_fields
from slurm_jobs_for_tests import Gated
from support import wait_for

import jupyter_slurm_ckpt as submitit

pytestmark = pytest.mark.slurm

WAIT_S = 120.0


def _setup_mark() -> str | None:
    return os.environ.get("JSC_SETUP_MARK")


def _scontrol(*args: str) -> str:
    done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_slurm_gets_each_submitit_parameter(
    executor: submitit.AutoExecutor, tmp_path: Path
) -> None:
    torn_down = tmp_path / "torn down"  # a space: the user's lines are shell, quoted by the user
    executor.update_parameters(
        slurm_job_name="vocabulary",
        slurm_mem="200M",
        slurm_time="0:07:00",
        slurm_comment="checked by scontrol",
        slurm_additional_parameters={"nice": 7},
        slurm_setup=["export JSC_SETUP_MARK=set-up"],
        slurm_teardown=[f"touch {shlex.quote(str(torn_down))}"],
    )
    job = executor.submit(_setup_mark)
    assert job.result(timeout=WAIT_S) == "set-up"  # the setup ran in the job's shell, before
    wait_for(torn_down.exists, "the teardown line to run after the job", WAIT_S)
    fields = slurm_fields(job.job_id)
    assert fields["JobName"] == "vocabulary"
    assert fields["MinMemoryNode"] == "200M"
    assert fields["TimeLimit"] == "00:07:00"
    assert fields["Nice"] == "7"
    comment = re.search(r"Comment=(.*)", _scontrol("show", "job", job.job_id))
    assert comment is not None and comment.group(1).strip() == "checked by scontrol"
    script = _scontrol("write", "batch_script", job.job_id, "-")
    assert "export JSC_SETUP_MARK=set-up" in script
    assert f"touch {shlex.quote(str(torn_down))}" in script
    assert script.index("JSC_SETUP_MARK") < script.index("touch ")
    assert job.paths.submission_file.read_text() == script  # what the user can read is it
    wait_for(lambda: job.get_info()["State"] == "COMPLETED", "the job to be COMPLETED", WAIT_S)


def test_interrupting_a_job_with_teardown(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path
) -> None:
    # With teardown lines the batch shell waits for the worker instead of exec'ing it, and
    # forwards the checkpoint signal to it: _interrupt still checkpoints and requeues, once.
    # Like the setup lines, the teardown lines run with every run (the requeued one too).
    torn_down = tmp_path / "teardown-runs"
    executor.update_parameters(slurm_teardown=[f"echo run >> {shlex.quote(str(torn_down))}"])
    job = executor.submit(Gated(), str(gate), 3)
    wait_for(lambda: job.state == "RUNNING" and job.summary().runs == 1, "run 0", WAIT_S)
    job._interrupt()
    wait_for(lambda: job.summary().runs == 2 and job.state == "RUNNING", "run 1", WAIT_S)
    gate.touch()
    result: dict[str, Any] = job.result(timeout=WAIT_S)
    assert result["runs"] == [0, 1] and result["resumed_from"][1] > 0
    assert [e["reason"] for e in job.events() if e["event"] == "signal"] == ["preemption"]
    wait_for(
        lambda: torn_down.exists() and torn_down.read_text() == "run\nrun\n",
        "the teardown after each of the two runs",
        WAIT_S,
    )
    time.sleep(1)  # a third teardown would come now
    assert torn_down.read_text() == "run\nrun\n"
