"""The same ``%%slurm`` cell, in a real IPython ``InteractiveShell``, submits to real Slurm."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import jupyter_slurm_ckpt as submitit

pytestmark = pytest.mark.slurm

WAIT_S = 120.0

CELL = """\
from jupyter_slurm_ckpt import Checkpointable, JobEnvironment

class Add(Checkpointable):
    def __call__(self, a, b):
        return a + b, JobEnvironment().job_id
"""


def test_cell_submits_to_slurm_with_its_options(ipython: Any, tmp_path: Path) -> None:
    # No --cluster: auto picks Slurm because sbatch is on PATH.
    ipython.run(
        "%%slurm --timeout 3 --no-widget --partition low --sbatch comment=from-magic "
        "--setup 'echo setup says hi'\n"
        f"{CELL}\njob = Add()(40, b=2)\n"
    )
    job = ipython.ns["job"]
    assert isinstance(job, submitit.SlurmJob)
    assert job.result(timeout=WAIT_S) == (42, job.job_id)
    assert job.paths.folder == tmp_path / "slurm_jobs"
    assert job.info.name == "Add" and job.info.timeout_min == 3
    shown = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True,
                           text=True).stdout
    assert "Comment=from-magic" in shown and "JobName=Add" in shown
    assert job.stdout() == "setup says hi\n"


def test_list_comprehension_is_one_slurm_array(ipython: Any) -> None:
    ipython.run(
        "%%slurm --no-widget\ndef cube(x):\n    return x ** 3\njobs = [cube(x) for x in range(4)]\n"
    )
    jobs = ipython.ns["jobs"]
    array = jobs[0].job_id.split("_")[0]
    assert [job.job_id for job in jobs] == [f"{array}_{i}" for i in range(4)]
    assert [job.result(timeout=WAIT_S) for job in jobs] == [0, 1, 8, 27]


def test_dry_run_shows_the_sbatch_script(
    ipython: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.run(
        "%%slurm --timeout 2 --dry-run --sbatch mail_type=NONE --name trial --mem-gb 2 "
        "--setup 'module load x' --sbatch comment=hello\n"
        "def f(x):\n    return x\njobs = [f(x) for x in range(3)]\n"
    )
    out = capsys.readouterr().out
    assert "backend: slurm" in out and "sbatch script:" in out
    # submitit's Slurm names, and what each becomes
    assert "job_name='trial'" in out and "mem='2GB'" in out and "time=2.0" in out
    assert "--job-name=trial" in out and "--mem=2GB" in out and "--comment=hello" in out
    assert "\nmodule load x\n" in out
    assert "--array=0-2" in out and "--mail-type=NONE" in out and "--time=2" in out
    assert "--signal=B:USR2@60" in out and "--open-mode=append" in out
    assert "exec " in out and "jupyter_slurm_ckpt.backends.slurm.task" in out
    assert "jobs" not in ipython.ns and not list(tmp_path.rglob("*_job.json"))


def test_failing_sbatch_is_a_usage_error_and_submits_nothing(ipython: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        ipython.run(
            "%%slurm --partition jsc_no_such_partition\ndef f():\n    return 1\njob = f()\n"
        )
    assert "sbatch: error: invalid partition specified: jsc_no_such_partition" in str(caught.value)
    assert "job" not in ipython.ns and not list(tmp_path.rglob("*_job.json"))
