"""``clean`` on a real Slurm cluster: Slurm's word that it still holds a job outranks its folder.

A job whose folder records an end while Slurm still runs it (its end recorded by a reader that
saw Slurm forget it, then a requeue by hand brought it back, say) is kept until Slurm lets it
go; an array's batch script stays until its last element is removed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from slurm_jobs_for_tests import Gated, square_or_fail
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.events import append_event

pytestmark = pytest.mark.slurm

WAIT_S = 120.0


def slurm_holds(job_id: str) -> bool:
    done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    return done.stdout.strip() not in ("", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT")


def test_a_job_slurm_still_runs_is_kept_whatever_its_folder_says(
    executor: submitit.AutoExecutor, folder: Path, gate: Path
) -> None:
    job = executor.submit(Gated(), str(gate))
    try:
        wait_for(lambda: job.state == "RUNNING", "the job to run", WAIT_S)
        append_event(job.paths.events, "failed", state="FAILED", reason="recorded by a reader")
        assert submitit.Job(folder, job.job_id).state == "FAILED"  # what the folder says

        report = submitit.clean(folder)

        assert report.removed == []
        assert report.kept == {job.key: "Slurm still has it RUNNING"}
        assert job.paths.info.exists() and job.paths.submitted_pickle.exists()
    finally:  # its folder says it ended: the fixture would not cancel it
        subprocess.run(["scancel", job.job_id], check=True)
    wait_for(lambda: not slurm_holds(job.job_id), "Slurm to let it go", WAIT_S)
    assert submitit.clean(folder).removed == [job.key]
    assert not list(folder.glob(f"{job.job_id}_*"))


def test_an_arrays_script_goes_with_its_last_element(
    executor: submitit.AutoExecutor, folder: Path, gate: Path
) -> None:
    done = executor.map_array(square_or_fail, [1, 2], [-1, -1])
    for job in done:
        assert job.result(timeout=WAIT_S) > 0
    running = executor.submit(Gated(), str(gate))
    wait_for(lambda: running.state == "RUNNING", "the job to run", WAIT_S)
    script = done[0].paths.submission_file
    assert script.exists()

    report = submitit.clean(folder, states="COMPLETED")

    assert sorted(report.removed) == sorted(job.key for job in done)
    assert not script.exists() and running.paths.submission_file.exists()
    assert running.state == "RUNNING"
    gate.touch()
    running.wait(WAIT_S)
