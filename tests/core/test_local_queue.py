"""The local queue: local jobs beyond their slots wait PENDING, as on Slurm, and start as slots
free; arrays obey their array_parallelism too. Real jobs, real locks, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes
from jupyter_slurm_ckpt.backends.local import slots

from .conftest import wait_running_run
from .jobs_for_tests import add, wait_file


def _intervals(jobs: list[submitit.Job[Any]]) -> list[tuple[float, float]]:
    """(start, end) of each job's run, from its own events."""
    found = []
    for job in jobs:
        events = job.events()
        start = next(e["t"] for e in events if e["event"] == "started")
        end = next(e["t"] for e in events if e["event"] in ("completed", "failed"))
        found.append((start, end))
    return found


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_jobs_beyond_the_slots_wait_pending_and_start_as_slots_free(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    local.update_parameters(slots=2)
    release = tmp_path / "release"
    first = [local.submit(wait_file, str(release)) for _ in range(2)]
    for job in first:
        wait_running_run(job, 0)
    third = local.submit(wait_file, str(release))
    wait_for(lambda: third.pending_reason == "LocalSlot", "the third job to wait for a slot")
    assert third.state == "PENDING" and third.summary().runs == 0
    first[0].cancel()  # frees a slot: the third starts
    wait_running_run(third, 0)
    release.touch()
    assert third.result(timeout=60) == "released" and first[1].result(timeout=60) == "released"


def test_an_array_never_runs_more_than_its_slots_and_parallelism(
    local: submitit.LocalExecutor,
) -> None:
    local.update_parameters(slots=3, array_parallelism=2)
    jobs = local.map_array(wait_file, [os.devnull] * 8)
    assert [job.result(timeout=120) for job in jobs] == ["released"] * 8
    assert _most_at_once(_intervals(jobs)) <= 2
    local.update_parameters(slots=2, array_parallelism=100)
    jobs = local.map_array(add, range(200), range(200))  # a few hundred: the suite's size
    assert [job.result(timeout=300) for job in jobs] == [2 * i for i in range(200)]
    assert _most_at_once(_intervals(jobs)) <= 2


def test_waiting_elements_say_why(local: submitit.LocalExecutor, tmp_path: Path) -> None:
    local.update_parameters(slots=4, array_parallelism=1)
    release = tmp_path / "release"
    jobs = local.map_array(wait_file, [str(release)] * 3)
    wait_running_run(jobs[0], 0)
    assert [job.state for job in jobs[1:]] == ["PENDING", "PENDING"]
    assert jobs[2].pending_reason == "JobArrayTaskLimit"
    later = local.submit(add, 1, 2)  # slots are free: it does not wait for the array
    assert later.result(timeout=60) == 3
    jobs[2].cancel()  # a waiting element is skipped, never started
    release.touch()
    assert jobs[1].result(timeout=60) == "released"
    wait_for(lambda: jobs[0].done() and jobs[1].done(), "the array's end")
    assert jobs[2].state == "CANCELLED" and jobs[2].summary().runs == 0


def test_a_cancelled_waiting_job_never_starts_and_leaves_no_process(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    local.update_parameters(slots=1)
    release = tmp_path / "release"
    running = local.submit(wait_file, str(release))
    wait_running_run(running, 0)
    waiting = local.submit(wait_file, str(release))
    wait_for(lambda: waiting.pending_reason is not None, "the second job to wait")
    controller = waiting._process()
    assert controller is not None
    assert waiting.cancel()
    wait_for(lambda: not processes.is_alive(controller["pid"]), "its controller to end")
    release.touch()
    assert running.result(timeout=60) == "released"
    assert waiting.state == "CANCELLED" and waiting.summary().runs == 0


def test_a_killed_job_gives_its_slot_back(local: submitit.LocalExecutor, tmp_path: Path) -> None:
    local.update_parameters(slots=1)
    victim = local.submit(wait_file, str(tmp_path / "never"))
    wait_running_run(victim, 0)
    waiting = local.submit(add, 2, 2)
    wait_for(lambda: waiting.pending_reason == "LocalSlot", "the second job to wait")
    pid = victim._process()["pid"]  # type: ignore[index]
    os.killpg(pid, signal.SIGKILL)  # the controller and its worker, without a word
    assert waiting.result(timeout=60) == 4


def test_the_default_is_what_the_machine_holds() -> None:
    one_cpu = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from jupyter_slurm_ckpt.backends.local.slots import default_slots as d;"
        "print(d({}), d({'cpus_per_task': 2}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", one_cpu], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["1", "1"]
    cpus = len(os.sched_getaffinity(0))
    assert slots.default_slots({}) == cpus
    assert slots.default_slots({"cpus_per_task": 1}, num_tasks=cpus) == 1
    total, _ = slots.machine_memory()
    half = total * slots.MEMORY_SHARE / 2 / slots.GIB
    assert slots.default_slots({"mem_gb": half * 1.01}) == 1  # two do not fit
    assert slots.job_slots({"slots": 7}) == 7


def test_elements_of_a_killed_launcher_end_failed_saying_so(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    local.update_parameters(slots=1)
    release = tmp_path / "release"
    jobs = local.map_array(wait_file, [str(release)] * 3)
    wait_running_run(jobs[0], 0)
    launcher = jobs[1]._array_launcher()
    assert launcher is not None and jobs[1].state == "PENDING"
    os.kill(launcher["pid"], signal.SIGKILL)  # the running element's controller is its own
    wait_for(lambda: jobs[2].state == "FAILED", "the waiting elements to end")
    with pytest.raises(submitit.UncompletedJobError, match=r"array.s launcher process .* ended"):
        jobs[1].result(timeout=5)
    release.touch()
    assert jobs[0].result(timeout=60) == "released"
