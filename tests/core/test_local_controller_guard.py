"""One controller per local job, workers that die with it, and no job declared dead early.

Real controllers, agents and signals: a duplicate launch (by hand, and the one a slow agent
causes), a SIGKILLed controller, and orphans that outlive it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes

from .conftest import wait_running_run
from .jobs_for_tests import spawn_tree, wait_file


def _controller(job: submitit.Job[object]) -> int:
    return int(json.loads(job.paths.local_process.read_text())["pid"])


def _starts(job: submitit.Job[object]) -> list[dict[str, object]]:
    return [e for e in job.events() if e["event"] == "started"]


DUPLICATE = "already has a controller"


def test_a_second_controller_of_a_running_job_leaves_it_alone(
    local: submitit.LocalExecutor, folder: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = local.submit(wait_file, str(release))
    wait_running_run(job, 0)
    first = _controller(job)
    duplicate = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local.controller", str(folder), "1",
         job.job_id],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert duplicate.returncode == 0 and DUPLICATE in duplicate.stderr
    assert _controller(job) == first and len(_starts(job)) == 1
    release.touch()
    assert job.result(timeout=60) == "released"
    # Once the job has run, a late duplicate does not run it again either.
    late = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local.controller", str(folder), "1",
         job.job_id],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert late.returncode == 0 and len(_starts(job)) == 1 and job.state == "COMPLETED"


def test_a_second_launcher_of_an_array_leaves_its_elements_alone(
    folder: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(array_parallelism=1)
    jobs = executor.map_array(wait_file, [str(release), str(release)])
    wait_running_run(jobs[0], 0)
    # The running element's controller answers for it; its array's launcher, for the other.
    array_id = jobs[0].job_id.partition("_")[0]
    records = [jobs[0].paths.local_process, folder / f"{array_id}_local.json"]
    before = [record.read_text() for record in records]
    assert jobs[1].state == "PENDING" and jobs[1].pending_reason == "JobArrayTaskLimit"
    duplicate = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.backends.local.controller", str(folder), "1",
         *(job.job_id for job in jobs)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert duplicate.returncode == 0, duplicate.stderr
    assert "has a launcher already" in duplicate.stderr
    assert [record.read_text() for record in records] == before
    release.touch()
    assert [job.result(timeout=60) for job in jobs] == ["released", "released"]
    assert [len(_starts(job)) for job in jobs] == [1, 1]


def test_a_slow_agent_does_not_launch_a_job_twice(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    # The agent stops answering (SIGSTOP): the submission times out, starts a new agent and
    # sends again. The old agent, resumed, still has the first request in its queue and
    # forks a second controller for the same job: that one must leave the job alone.
    local.submit(len, "warm").result(timeout=60)
    release = tmp_path / "release"
    first = local.submit(wait_file, str(release))
    wait_running_run(first, 0)
    agent = processes.parent_of(_controller(first))
    assert "backends.local.agent" in Path(f"/proc/{agent}/cmdline").read_text()
    os.kill(agent, signal.SIGSTOP)
    try:
        job = local.submit(wait_file, str(release))
    finally:
        os.kill(agent, signal.SIGCONT)
    wait_for(lambda: DUPLICATE in (job.stderr() or ""), "the old agent's duplicate launch")
    processes.terminate([agent], 1.0)  # its socket is the new agent's now: nobody else reaches it
    release.touch()
    assert job.result(timeout=60) == first.result(timeout=60) == "released"
    assert len(_starts(job)) == 1


def test_workers_die_with_their_controller(local: submitit.LocalExecutor, tmp_path: Path) -> None:
    job = local.submit(wait_file, str(tmp_path / "never"))
    wait_running_run(job, 0)
    (worker,) = [int(str(e["pid"])) for e in _starts(job)]
    os.kill(_controller(job), signal.SIGKILL)
    # Before the fix the worker ran on, without a time limit and with nobody to requeue it.
    wait_for(lambda: not processes.is_alive(worker), "the worker to die with its controller")
    wait_for(lambda: job.state == "FAILED", "the job to be seen dead")


def _orphans_of_a_killed_controller(
    local: submitit.LocalExecutor, tmp_path: Path
) -> tuple[submitit.Job[object], list[int]]:
    """A job whose worker started a child and a grandchild, then lost its controller
    (SIGKILL) and so died itself: the job and the two processes that outlived both."""
    pid_file = tmp_path / "pids"
    job = local.submit(spawn_tree, str(pid_file))
    wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 3, "pids")
    worker, *orphans = (int(p) for p in pid_file.read_text().split())
    try:
        os.kill(_controller(job), signal.SIGKILL)
        wait_for(lambda: not processes.is_alive(worker), "the worker to die with its controller")
    except BaseException:
        processes.terminate(orphans, 1.0)
        raise
    return job, orphans


def test_a_job_is_dead_only_when_no_process_of_it_lives(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    job, orphans = _orphans_of_a_killed_controller(local, tmp_path)
    try:
        # What the worker started lives on and may still write the job's files.
        temporary = job.paths.folder / f".tmp-{job.job_id}_0_result.pkl.0123abcd"
        temporary.write_bytes(b"partial")
        assert all(processes.is_alive(pid) for pid in orphans)
        assert job.state == "RUNNING"
        assert temporary.exists()
    finally:
        processes.terminate(orphans, 1.0)
    wait_for(lambda: job.state == "FAILED", "the job to be seen dead")
    assert not temporary.exists()  # junk once nothing of the job can write any more


def test_cancel_stops_what_outlived_a_dead_controller(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    job, orphans = _orphans_of_a_killed_controller(local, tmp_path)
    job.cancel()
    assert job.state == "CANCELLED"
    assert not any(processes.is_alive(pid) for pid in orphans)
