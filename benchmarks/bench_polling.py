"""How often a kernel that watches Slurm jobs asks the scheduler, and how fast it still sees news.

Cluster admins rate-limit tools that poll ``squeue``/``sacct`` often. This counts every Slurm
command the watching process runs (a counting wrapper first on ``PATH``, as the tests use) while
the process's shared watcher (what every live job widget subscribes to) watches:

- a new process (a new kernel) that submits 1 job and watches it: the calls 8-68 s after the
  submission (its first minute, the accounting question included);
- 1 RUNNING job, then 100 RUNNING jobs (one array), then 20 PENDING jobs, each for
  ``--minutes`` (calls per minute);
- the latency from an event the job writes (``started``, ``completed``) to the watcher's
  callback showing the new state;
- how long until a job killed without a word (SIGKILL, as by the OOM killer) is shown ended.

Needs a running cluster with room for 100 small jobs:
``eval "$(bash tests/slurm/cluster.sh start --cpus 64)"``.
Run: ``.venv/bin/python benchmarks/bench_polling.py [--minutes 2]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_slurm import jobs_module, wait  # the tests' job classes, pickled by value

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.slurm.state import STATES
from jupyter_slurm_ckpt.views.watcher import get_watcher

COMMANDS = ("sacct", "squeue", "scontrol", "sinfo", "scancel", "sbatch")
WAIT_S = 300.0


def wrap_slurm_commands(folder: Path) -> Path:
    """Put counting wrappers of the Slurm commands first on PATH; returns their log."""
    log = folder / "calls.log"
    log.touch()
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for command in COMMANDS:
        real = shutil.which(command)
        assert real is not None, f"{command} is not on PATH: start the cluster first"
        wrapper = bin_dir / command
        wrapper.write_text(
            f'#!/bin/sh\necho "$(date +%s.%N) {command} $*" >> {shlex.quote(str(log))}\n'
            f'exec {shlex.quote(real)} "$@"\n'
        )
        wrapper.chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return log


class Calls:
    """The scheduler commands of this process (the wrapper's log), counted over a window."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def since(self, start: float, kinds: tuple[str, ...] = ("sacct", "squeue", "scontrol")) -> int:
        count = 0
        for line in self.log.read_text().splitlines():
            stamp, command, *_ = line.split()
            if float(stamp) >= start and command in kinds:
                count += 1
        return count


def watched_rate(jobs: list[submitit.Job[Any]], calls: Calls, minutes: float) -> float:
    """Scheduler calls per minute while the shared watcher watches ``jobs``."""
    subscription = get_watcher().watch(jobs, lambda statuses: None)
    try:
        time.sleep(5)  # the first look at new jobs is not the steady state
        start = time.time()
        time.sleep(minutes * 60)
        return calls.since(start) / minutes
    finally:
        subscription.cancel()


NEW_KERNEL = """
import sys, time
sys.path.insert(0, {benchmarks!r})
from bench_slurm import jobs_module
import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.watcher import get_watcher
executor = submitit.AutoExecutor({folder!r}, cluster="slurm")
executor.update_parameters(timeout_min=10)
print(time.time(), flush=True)
job = executor.submit(jobs_module.Gated(), {gate!r})
get_watcher().watch([job], lambda statuses: None)
time.sleep(70)
job.cancel()
"""


def first_minute(folder: Path, calls: Calls) -> int:
    """Scheduler calls in the window 8-68 s after a new process (a new kernel) submitted one
    job and watched it (its widget): its first looks, not a steady state measured later."""
    code = NEW_KERNEL.format(
        benchmarks=str(Path(__file__).parent), folder=str(folder / "new"), gate=str(folder / "no")
    )
    done = subprocess.run(  # cwd: not this checkout, which ``-c`` would put first on sys.path
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=folder
    )
    submitted = float(done.stdout.split()[0])
    return calls.since(submitted + 8) - calls.since(submitted + 68)


def scancel(jobs: list[submitit.Job[Any]]) -> None:
    roots = sorted({job.job_id.split("_")[0] for job in jobs})
    subprocess.run(["scancel", *roots], check=False)


def latencies(folder: Path) -> tuple[float, float]:
    """(s from the job's ``started`` event to the watcher showing RUNNING, the same for
    ``completed`` to COMPLETED); 0 when the state was shown first (Slurm said it)."""
    gate = folder / "gate"
    executor = submitit.AutoExecutor(folder / "lat", cluster="slurm")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(jobs_module.Gated(), str(gate))
    seen: dict[str, float] = {}
    lock = threading.Lock()

    def on_status(statuses: list[Any]) -> None:
        with lock:
            seen.setdefault(statuses[0].state, time.time())

    subscription = get_watcher().watch([job], on_status)
    try:
        wait(lambda: "RUNNING" in seen and job.summary().runs == 1, "RUNNING", WAIT_S)
        started = next(e["t"] for e in job.events() if e["event"] == "started")
        time.sleep(70)  # past the first minute: the watcher's quiet cadence
        gate.touch()
        wait(lambda: "COMPLETED" in seen, "COMPLETED", WAIT_S)
        completed = next(e["t"] for e in job.events() if e["event"] == "completed")
    finally:
        subscription.cancel()
    return max(0.0, seen["RUNNING"] - started), max(0.0, seen["COMPLETED"] - completed)


def killed_without_a_word(folder: Path) -> float:
    """s from a SIGKILL of the job's process (as the OOM killer sends it: no event, nothing to
    catch) to the watcher showing the job ended. (``scancel -s KILL`` would not do: Slurm sends
    SIGTERM first, and the job records its end itself.)"""
    executor = submitit.AutoExecutor(folder / "kill", cluster="slurm")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(jobs_module.Gated(), str(folder / "never"))
    ended: list[float] = []
    subscription = get_watcher().watch(
        [job], lambda statuses: statuses[0].done and not ended and ended.append(time.time())
    )
    try:
        wait(lambda: job.summary().runs == 1, "the job to start", WAIT_S)
        time.sleep(70)  # a job that has run for a while: the watcher polls at its slow pace
        killed = time.time()
        os.kill(next(e["pid"] for e in job.events() if e["event"] == "started"), signal.SIGKILL)
        wait(lambda: bool(ended), "the watcher to show the end", WAIT_S)
    finally:
        subscription.cancel()
    return ended[0] - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="window of each rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jsc-bench-polling-") as tmp:
        root = Path(tmp)
        calls = Calls(wrap_slurm_commands(root))
        executor = submitit.AutoExecutor(root / "jobs", cluster="slurm")
        executor.update_parameters(timeout_min=30)
        try:
            measure(root, calls, executor, args.minutes)
        finally:  # nothing left running, whatever happened
            ids = sorted({p.name.split("_")[0] for p in root.rglob("*_job.json")})
            subprocess.run(["scancel", *ids], check=False)


def measure(root: Path, calls: Calls, executor: submitit.AutoExecutor, minutes: float) -> None:
    """Every row of the benchmark, printed as it is measured."""
    print(f"polling benchmark: one watching process, {minutes:g}-minute windows")

    def row(name: str, value: str) -> None:
        print(f"  {name:<50}  {value}", flush=True)

    row("1 RUNNING job, 8-68 s after a new process's submit", f"{first_minute(root, calls)} calls")
    one = [executor.submit(jobs_module.Gated(), str(root / "gate1"))]
    wait(lambda: one[0].summary().runs == 1, "1 job running", WAIT_S)
    # The first query of a process finds out whether sacct works (a second command where it
    # does not): a cost once per process, not a rate.
    STATES.refresh([one[0].job_id])
    row("1 RUNNING job", f"{watched_rate(one, calls, minutes):.1f} calls/min")
    scancel(one)

    many: list[submitit.Job[Any]] = []
    for _ in range(5):  # 20 at a time: 100 Python start-ups at once swamp a small machine
        many += executor.map_array(jobs_module.Gated(step_s=1.0), [str(root / "gate2")] * 20)
        batch = list(many)
        wait(lambda b=batch: all(job.summary().runs == 1 for job in b), f"{len(batch)} running",
             WAIT_S)
    rate = watched_rate(many, calls, minutes)
    row("100 RUNNING jobs", f"{rate:.1f} calls/min")
    scancel(many)

    executor.update_parameters(slurm_additional_parameters={"begin": "now+1hour"})
    pending = executor.map_array(jobs_module.square_or_fail, range(20), [-1] * 20)
    rate = watched_rate(pending, calls, minutes)
    row("20 PENDING jobs", f"{rate:.1f} calls/min")
    scancel(pending)

    started, completed = latencies(root)
    row("job writes started -> widget RUNNING", f"{started:.2f} s")
    row("job writes completed -> widget COMPLETED", f"{completed:.2f} s")
    killed = killed_without_a_word(root)
    row("job SIGKILLed -> widget shows the end", f"{killed:.1f} s")
    print(f"  (polling mode: {'sacct' if STATES.accounting else 'squeue, no accounting'})")


if __name__ == "__main__":
    main()
