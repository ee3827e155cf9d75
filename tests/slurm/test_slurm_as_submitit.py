"""The ``as_submitit`` switch on the real cluster: an unmodified program that says ``import
submitit`` (in the job too) is preempted with ``_interrupt()``, resumes from its checkpoint and
completes; one task and two (srun), with the real submitit installed beside the package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PROGRAMS, run_as_submitit
from test_as_submitit import run_training

from jupyter_slurm_ckpt.submitit_alias import SWITCH_PATH

pytestmark = pytest.mark.slurm


@pytest.mark.parametrize("tasks", [1, 2])
def test_an_unmodified_submitit_program_is_preempted_and_resumes_on_slurm(
    tasks: int, tmp_path: Path, real_submitit: Path
) -> None:
    output = run_training("slurm", tasks, tmp_path, real_submitit)
    assert output["job_id"].isdigit()  # Slurm's id


def test_a_payload_naming_submitit_modules_loads_in_a_slurm_job(
    tmp_path: Path, real_submitit: Path
) -> None:
    done = run_as_submitit(
        ["-m", "submitit_payload", "slurm", str(tmp_path / "jobs")],
        cwd=PROGRAMS, python_path=real_submitit,
    )  # fmt: skip
    result = json.loads(done.stdout.splitlines()[-1])["result"]
    assert result["job_id"].isdigit()
    assert result["submitit"].startswith(str(SWITCH_PATH))
