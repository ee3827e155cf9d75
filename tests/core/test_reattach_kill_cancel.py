"""Re-attach from another interpreter, SIGKILL during a checkpoint write, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes
from jupyter_slurm_ckpt.core import payload

from .conftest import wait_running_run
from .jobs_for_tests import Counter, Heavy, spawn_tree

REATTACH = """
import json, sys
import jupyter_slurm_ckpt as submitit
job = submitit.{cls}(sys.argv[1], sys.argv[2])
print(json.dumps({{"state": job.state, "result": job.result(timeout=60)["count"],
                  "restarts": job.restart_count}}))
"""


def _reattach(cls: str, folder: Path, job_id: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", REATTACH.format(cls=cls), str(folder), job_id],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_reattach_running_and_finished_jobs(local: submitit.LocalExecutor, folder: Path) -> None:
    running = local.submit(Counter(step_s=0.05), 60)
    wait_running_run(running, 0)
    # Another interpreter sees it running, interrupts it, and waits for its result.
    code = (
        "import sys, jupyter_slurm_ckpt as s; j = s.LocalJob(sys.argv[1], sys.argv[2]);"
        "print(j.state); j._interrupt()"
    )
    seen = subprocess.run(
        [sys.executable, "-c", code, str(folder), running.job_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seen.stdout.strip() == "RUNNING", seen.stderr
    report = _reattach("Job", folder, running.job_id)
    assert report == {"state": report["state"], "result": 60, "restarts": 1}

    finished = local.submit(Counter(step_s=0.0), 5)
    finished.wait(timeout=60)
    assert _reattach("LocalJob", folder, finished.job_id) == {
        "state": "COMPLETED",
        "result": 5,
        "restarts": 0,
    }


def test_sigkill_while_writing_the_checkpoint_keeps_the_previous_one(
    local: submitit.LocalExecutor,
) -> None:
    job = local.submit(
        Heavy(megabytes=200),
    )
    wait_running_run(job, 0)
    before = job.paths.submitted_pickle.read_bytes()
    worker = next(e["pid"] for e in job.events() if e["event"] == "started")
    job._interrupt()
    # The checkpoint of 200 MB is written to a hidden temporary: kill the worker meanwhile.
    temp = wait_for(
        lambda: list(job.paths.folder.glob(f".tmp-{job.job_id}_submitted.pkl.*")),
        timeout=30,
        what="the checkpoint's temporary file",
    )
    os.kill(worker, signal.SIGKILL)
    assert temp
    job.wait(timeout=30)
    assert job.state == "FAILED"
    assert "SIGKILL" in str(job.exception())
    # The payload is the complete previous one, still loadable.
    assert job.paths.submitted_pickle.read_bytes() == before
    assert payload.load(job.paths.submitted_pickle).function.generation == 0


def test_cancel_kills_the_whole_tree(local: submitit.LocalExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    job = local.submit(spawn_tree, str(pid_file))
    wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 3, "pids")
    pids = [int(p) for p in pid_file.read_text().split()]
    controller = json.loads(job.paths.local_process.read_text())["pid"]
    assert all(processes.is_alive(pid) for pid in [controller, *pids])
    job.cancel()
    assert job.state == "CANCELLED"
    wait_for(
        lambda: not any(processes.is_alive(p) for p in [controller, *pids]),
        timeout=10,
        what="every process of the job to end",
    )
    assert job.done()
    assert [e["event"] for e in job.events()][-1] == "cancelled"


def test_cancel_pending_array_element_never_starts(folder: Path) -> None:
    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(array_parallelism=1)
    jobs = executor.map_array(time.sleep, [1.0, 0.0])
    jobs[1].cancel()
    jobs[0].wait(timeout=60)
    time.sleep(0.2)
    assert jobs[1].state == "CANCELLED"
    assert "started" not in [e["event"] for e in jobs[1].events()]
