"""200 local jobs, the kernel restarted mid-run: ``%slurm_jobs`` re-attaches them all.

A real kernel (jupyter_client ``KernelManager`` running this venv's Python) submits 200 jobs with
``%%slurm`` (one job array; each job waits for a release file, then sleeps 0.5-2 s) and 20
long sleepers. Once every job runs, the kernel is killed and restarted. In the new kernel
``%slurm_jobs`` must find all 220 jobs, every one of the 200 results must be right after the
release, and after a cancel-all no process of any job may be left (checked in ``/proc``: the
controllers, the workers, their descendants and their sessions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import KernelSession, venv_kernel, wait_for

from jupyter_slurm_ckpt.backends import processes

JOBS = 200
SLEEPERS = 20
WAIT_S = 300.0  # generous: 440 processes start on 2 shared cores

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel(tmp_path: Path, venv_kernel_dir: Path) -> Iterator[KernelSession]:
    with venv_kernel(tmp_path, venv_kernel_dir, tmp_path / "slurm_jobs") as km:
        kernel = KernelSession(km, WAIT_S)
        try:
            yield kernel
        finally:
            kernel.client.stop_channels()


def _session(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rfind(")") + 2 :].split()[3])


def job_processes(folder: Path) -> dict[int, int | None]:
    """Every live process of the jobs of ``folder`` (pid -> start time, against pid reuse):
    the controllers (``<id>_local.json``), the workers (``started`` events), everything below
    them, and everything in a controller's session (a process that left the tree)."""
    roots = set()
    for record in folder.glob("*_local.json"):
        roots.add(int(json.loads(record.read_text())["pid"]))
    for log in folder.glob("*_events.jsonl"):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "started":
                roots.add(int(event["pid"]))
    found = set(roots)
    for pid in roots:
        found.update(processes.descendants(pid))
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _session(int(entry)) in roots:
            found.add(int(entry))
    return {pid: processes.start_time(pid) for pid in found if processes.is_alive(pid)}


def started(folder: Path) -> int:
    count = 0
    for events in folder.glob("*_events.jsonl"):
        if b'"event": "started"' in events.read_bytes():
            count += 1
    return count


def test_two_hundred_jobs_survive_a_kernel_restart(kernel: KernelSession, tmp_path: Path) -> None:
    folder = tmp_path / "slurm_jobs"
    release = tmp_path / "release"
    kernel.run("%load_ext jupyter_slurm_ckpt")
    # Every job must run at once (they wait for the release): more slots than the machine's
    # CPUs, which the local queue would give by default.
    kernel.run(f"%config SlurmMagics.local_slots = {JOBS + SLEEPERS}")
    kernel.run(
        "%%slurm --cluster local --no-widget\n"
        "import os, time\n"
        "def work(i, release):\n"
        "    while not os.path.exists(release):\n"
        "        time.sleep(0.1)\n"
        "    time.sleep(0.5 + (i % 4) * 0.5)\n"
        "    return i * i\n"
        f"jobs = [work(i, {str(release)!r}) for i in range({JOBS})]\n"
    )
    kernel.run(
        "%%slurm --cluster local --no-widget\n"
        "import time\n"
        "def nap(seconds):\n"
        "    time.sleep(seconds)\n"
        f"sleepers = [nap(600) for _ in range({SLEEPERS})]\n"
    )
    wait_for(lambda: started(folder) == JOBS + SLEEPERS, "every job to run", WAIT_S)
    before = job_processes(folder)
    assert len(before) >= 2 * (JOBS + SLEEPERS)  # a controller and a worker each, at least

    old_kernel = kernel.restart()  # mid-run: every job is waiting for its release

    assert not processes.is_alive(old_kernel)
    survivors = [pid for pid, start in before.items() if processes.is_alive(pid, start)]
    assert len(survivors) == len(before), "the restart killed processes of the jobs"
    listed = json.loads(
        kernel.run(
            "%load_ext jupyter_slurm_ckpt\n"
            "import collections, json\n"
            "jobs = %slurm_jobs\n"
            "print(json.dumps({'ids': sorted(jobs), 'unreadable': jobs.unreadable,\n"
            "    'states': jobs.counts,  # every job by state (the table shows the newest 50)\n"
            "    'names': collections.Counter(job.info.name for job in jobs.values())}))\n"
        )
    )
    assert listed["unreadable"] == {}
    assert listed["names"] == {"work": JOBS, "nap": SLEEPERS}
    assert listed["states"] == {"RUNNING": JOBS + SLEEPERS}
    work_ids = sorted(f"L1_{i}" for i in range(JOBS))
    nap_ids = sorted(f"L2_{i}" for i in range(SLEEPERS))
    assert listed["ids"] == sorted(work_ids + nap_ids)

    release.touch()
    results = json.loads(
        kernel.run(
            "results = {job_id: job.result(timeout=300) for job_id, job in jobs.items()\n"
            "           if job.info.name == 'work'}\n"
            "print(json.dumps(results))\n"
        )
    )
    assert results == {f"L1_{i}": i * i for i in range(JOBS)}

    states = json.loads(
        kernel.run(
            "for job in jobs.values():\n"
            "    job.cancel()\n"
            "print(json.dumps(collections.Counter(job.state for job in jobs.values())))\n"
        )
    )
    assert states == {"COMPLETED": JOBS, "CANCELLED": SLEEPERS}

    def orphans() -> list[int]:
        left = [pid for pid, start in before.items() if processes.is_alive(pid, start)]
        return left + [pid for pid in job_processes(folder) if pid not in before]

    wait_for(lambda: orphans() == [], "no process of any job to be left", WAIT_S)
