"""The Slurm backend on the real dev cluster: polling cost, latencies, a 1000-task array.

Needs a running cluster (``eval "$(bash tests/slurm/cluster.sh start [--accounting])"``); the
polling mode (sacct, or squeue/scontrol without accounting) is the cluster's. Rows:

- scheduler calls per watcher tick while watching 1, 10 and 100 jobs (goal: 1 for any N);
- time from submit to the first RUNNING state seen (``job.state`` in a loop), and to the
  worker's ``started`` event;
- from a result file landing to ``result()`` returning (``done()`` reads the folder first);
- a 1000-task array: wall time of ``map_array`` (one ``sbatch --array``, goal < 3 s);
- requeue turnaround: ``_interrupt()`` -> next run started, next to Slurm's own
  ``scontrol requeue`` -> RUNNING again of a plain job (the requeue hold, BeginTime).

Run: ``.venv/bin/python benchmarks/bench_slurm.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.slurm_state import COUNTER, STATES
from jupyter_slurm_ckpt.watcher import Watcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "slurm"))
import slurm_jobs_for_tests as jobs_module

cloudpickle.register_pickle_by_value(jobs_module)

WAIT_S = 120.0


def wait(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def executor(folder: Path, **parameters: Any) -> submitit.AutoExecutor:
    made = submitit.AutoExecutor(folder, cluster="slurm")
    made.update_parameters(timeout_min=10, **parameters)
    return made


def scancel(job_ids: list[str]) -> None:
    roots = sorted({job_id.split("_")[0] for job_id in job_ids})
    subprocess.run(["scancel", *roots], check=False)


def calls_per_tick(folder: Path, count: int, ticks: int = 20) -> tuple[float, float]:
    """(scheduler calls per watcher tick, ms of one batched poll) for ``count`` pending jobs."""
    made = executor(folder, slurm_additional_parameters={"begin": "now+1hour"})
    if count == 1:
        watched = [made.submit(jobs_module.whoami)]
    else:  # one array: submitting 100 single jobs would measure sbatch, not polling
        watched = made.map_array(jobs_module.square_or_fail, range(count), [-1] * count)
    ids = [job.job_id for job in watched]
    try:
        STATES.refresh(ids)  # the first call of a process finds out whether sacct works
        seen: list[int] = []
        watcher = Watcher(min_interval_s=0.2, max_interval_s=0.2)
        before = COUNTER.total
        subscription = watcher.watch(watched, lambda statuses: seen.append(len(statuses)))
        wait(lambda: len(seen) >= ticks, f"{ticks} ticks")
        subscription.cancel()
        calls = (COUNTER.total - before) / watcher.ticks
        costs = []
        for _ in range(5):  # one forced batched poll of all of them
            started = time.perf_counter()
            STATES.refresh(ids)
            costs.append(time.perf_counter() - started)
        return calls, 1000 * statistics.median(costs)
    finally:
        scancel(ids)


def submit_to_running(folder: Path) -> tuple[float, float, float]:
    """(s to the first RUNNING seen by job.state, s to the worker's started event, s from the
    result file landing to ``result()`` returning)."""
    gate = folder / "gate"
    made = executor(folder)
    started = time.perf_counter()
    t0 = time.time()
    job = made.submit(jobs_module.Gated(), str(gate))
    wait(lambda: job.state == "RUNNING", "RUNNING")
    seen = time.perf_counter() - started
    wait(lambda: job.summary().runs > 0, "started event")
    event = next(e["t"] for e in job.events() if e["event"] == "started") - t0
    time.sleep(4)  # let the state cache back off, as it does for a long job
    gate.touch()
    job.result(timeout=WAIT_S)
    returned = time.time()
    landed = job.paths.result_pickle.stat().st_mtime
    return seen, event, returned - landed


def big_array(folder: Path, size: int = 1000) -> tuple[float, int]:
    """(s to submit ``size`` tasks with map_array, sbatch calls made)."""
    made = executor(folder, slurm_additional_parameters={"begin": "now+1hour"})
    before = COUNTER.by_command.get("sbatch", 0)
    started = time.perf_counter()
    array = made.map_array(jobs_module.square_or_fail, range(size), [-1] * size)
    elapsed = time.perf_counter() - started
    assert len(array) == size
    scancel([array[0].job_id])
    return elapsed, COUNTER.by_command.get("sbatch", 0) - before


def requeue_turnaround(folder: Path) -> tuple[float, float]:
    """(s from _interrupt() to the next run's start, s from scontrol requeue to RUNNING)."""
    gate = folder / "gate"
    made = executor(folder)
    job = made.submit(jobs_module.Gated(), str(gate))
    wait(lambda: job.summary().runs == 1 and job.state == "RUNNING", "run 0")
    started = time.time()
    job._interrupt()
    wait(lambda: job.summary().runs == 2, "run 1")
    ours = [e["t"] for e in job.events() if e["event"] == "started"][-1] - started
    gate.touch()
    job.result(timeout=WAIT_S)
    plain = subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 300"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()

    def slurm_state() -> str:
        return subprocess.run(["squeue", "-h", "-j", plain, "-o", "%T"], capture_output=True,
                              text=True).stdout.strip()

    try:
        wait(lambda: slurm_state() == "RUNNING", "plain job running")
        begin = time.perf_counter()
        subprocess.run(["scontrol", "requeue", plain], check=True)
        wait(lambda: slurm_state() == "PENDING", "plain job requeued")
        wait(lambda: slurm_state() == "RUNNING", "plain job running again")
        theirs = time.perf_counter() - begin
    finally:
        scancel([plain])
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of the latency rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jsc-bench-slurm-") as tmp:
        root = Path(tmp)
        for count in (1, 10, 100):
            calls, ms = calls_per_tick(root / f"watch{count}", count)
            if count == 1:
                mode = "sacct" if STATES.accounting else "squeue/scontrol (no accounting)"
                print(f"Slurm backend benchmark; polling mode: {mode}")
            print(f"watching {count:>3} jobs: {calls:.2f} scheduler calls per watcher tick "
                  f"(0.2 s ticks); one batched poll of all {count}: {ms:.0f} ms")
        runs = [submit_to_running(root / f"lat{i}") for i in range(args.repeat)]
        print(f"submit -> first RUNNING seen: median {statistics.median(r[0] for r in runs):.2f} s"
              f" (worker started: {statistics.median(r[1] for r in runs):.2f} s)")
        print(f"result file landed -> result() returned: median "
              f"{1000 * statistics.median(r[2] for r in runs):.0f} ms, "
              f"max {1000 * max(r[2] for r in runs):.0f} ms")
        seconds, sbatches = big_array(root / "array")
        print(f"1000-task array: submitted in {seconds:.2f} s with {sbatches} sbatch call(s)")
        turns = [requeue_turnaround(root / f"rq{i}") for i in range(args.repeat)]
        print(f"requeue turnaround: _interrupt -> next run started "
              f"{statistics.median(t[0] for t in turns):.1f} s; Slurm's own scontrol requeue -> "
              f"RUNNING {statistics.median(t[1] for t in turns):.1f} s")


if __name__ == "__main__":
    main()
