"""The Slurm backend on the real dev cluster: polling cost, latencies, a 1000-task array.

Needs a running cluster (``eval "$(bash tests/slurm/cluster.sh start [--accounting])"``); the
polling mode (sacct, or squeue/scontrol without accounting) is the cluster's. Rows:

- scheduler calls per watcher tick while watching 1, 10 and 100 jobs (goal: 1 for any N);
- time from submit to the first RUNNING state seen (``job.state`` in a loop), and to the
  worker's ``started`` event;
- from a result file landing to ``result()`` returning (``done()`` reads the folder first);
- a 1000-task array: wall time of ``map_array`` (one ``sbatch --array``, goal < 3 s);
- requeue turnaround: ``_interrupt()`` -> next run started, next to Slurm's own
  ``scontrol requeue`` -> RUNNING again of a plain job (the requeue hold, BeginTime);
- a real preemption by a high-priority job: -> checkpoint durable on disk, -> running again
  (run it on both clusters: ``--preemption signal``, the USR2 comes at once, and ``stock``,
  the SIGTERM at the end of the grace time is the only notice);
- side by side with submitit 1.5.4 (when it is installed: ``pip install submitit==1.5.4``) on
  the same cluster, in the same run: a 1000-task array, ``_interrupt()`` -> next run, and the
  scheduler calls of a loop waiting on ``job.done()`` for a running job, with how long each
  takes to see that job die without a word (SIGKILL).

Run: ``.venv/bin/python benchmarks/bench_slurm.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
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
from jupyter_slurm_ckpt.backends.slurm.commands import COUNTER
from jupyter_slurm_ckpt.backends.slurm.state import STATES
from jupyter_slurm_ckpt.views.watcher import Watcher

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


def preemption(folder: Path) -> tuple[float, float]:
    """(s from a high-priority job's submission to our checkpoint being durable on disk, s to
    the job running again) for a job preempted on its node."""
    gate = folder / "gate"
    made = executor(folder, slurm_exclusive=True)
    job = made.submit(jobs_module.Gated(), str(gate))
    wait(lambda: job.summary().runs == 1 and job.state == "RUNNING", "run 0")
    node = subprocess.run(["squeue", "-h", "-j", job.job_id, "-o", "%N"], capture_output=True,
                          text=True, check=True).stdout.strip()
    started = time.time()
    high = subprocess.run(
        ["sbatch", "--parsable", "--exclusive", "--partition=high", f"--nodelist={node}",
         "--output=/dev/null", "--wrap", "sleep 1"], capture_output=True, text=True, check=True,
    ).stdout.strip()
    try:
        wait(lambda: job.summary().runs == 2, "run 1")
    finally:
        scancel([high])
    # The checkpoint event is written after the new payload is fsynced and renamed.
    durable = next(e["t"] for e in job.events() if e["event"] == "checkpoint") - started
    again = [e["t"] for e in job.events() if e["event"] == "started"][-1] - started
    gate.touch()
    job.result(timeout=WAIT_S)
    return durable, again


def _submitit() -> Any:
    """submitit, if installed (for the side-by-side rows), else None."""
    try:
        import submitit
    except ImportError:
        return None
    return submitit


def their_array(submitit: Any, folder: Path, size: int = 1000) -> float:
    """s for submitit's ``map_array`` of ``size`` tasks (held by --begin, then cancelled)."""
    made = submitit.AutoExecutor(folder, cluster="slurm")
    made.update_parameters(timeout_min=10, slurm_additional_parameters={"begin": "now+1hour"})
    started = time.perf_counter()
    jobs = made.map_array(jobs_module.square_or_fail, range(size), [-1] * size)
    elapsed = time.perf_counter() - started
    subprocess.run(["scancel", jobs[0].job_id.split("_")[0]], check=False)
    return elapsed


def their_interrupt(submitit: Any, folder: Path) -> float:
    """s from submitit's ``_interrupt()`` to the next run of its job starting."""

    class Counting(submitit.helpers.Checkpointable):  # type: ignore[misc]
        def __init__(self) -> None:
            self.starts: list[float] = []

        def __call__(self, marker: str) -> int:
            self.starts.append(time.time())
            Path(marker).write_text(str(len(self.starts)))
            time.sleep(600)
            return len(self.starts)

    marker = folder / "runs"
    made = submitit.AutoExecutor(folder, cluster="slurm", slurm_max_num_timeout=3)
    made.update_parameters(timeout_min=10)
    job = made.submit(Counting(), str(marker))
    try:
        wait(lambda: marker.exists() and marker.read_text() == "1", "their run 0")
        time.sleep(1)
        started = time.time()
        job._interrupt()
        wait(lambda: marker.read_text() == "2", "their run 1")
        return marker.stat().st_mtime - started
    finally:
        subprocess.run(["scancel", job.job_id], check=False)


def done_loop(job: Any, calls: Callable[[], int], seconds: float) -> float:
    """Scheduler calls per minute of a loop asking ``job.done()`` every 0.1 s."""
    before, end = calls(), time.monotonic() + seconds
    while time.monotonic() < end:
        job.done()
        time.sleep(0.1)
    return (calls() - before) * 60 / seconds


def seen_dead(job: Any, pid: int) -> float:
    """s from a SIGKILL of the job's process to ``job.done()`` saying so."""
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait(job.done, "done() after the kill", timeout=900)
    return time.monotonic() - killed


def polling_side_by_side(submitit: Any, folder: Path, log: Path, seconds: float) -> list[str]:
    """Rows: calls/min of a ``job.done()`` loop on a running job, and how long until it sees
    the job killed, ours and submitit's."""

    def calls() -> int:
        return sum(1 for line in log.read_text().splitlines()
                   if line.split()[0] in ("sacct", "squeue", "scontrol"))

    ours = executor(folder / "ours").submit(jobs_module.Gated(), str(folder / "never"))
    wait(lambda: ours.summary().runs == 1, "our job running")
    our_rate = done_loop(ours, calls, seconds)
    our_seen = seen_dead(ours, next(e["pid"] for e in ours.events() if e["event"] == "started"))
    theirs_exec = submitit.AutoExecutor(folder / "theirs", cluster="slurm")
    theirs_exec.update_parameters(timeout_min=10)
    pid_file = folder / "their_pid"
    theirs = theirs_exec.submit(_write_pid_and_sleep, str(pid_file))
    wait(lambda: pid_file.exists() and pid_file.read_text(), "their job running")
    their_rate = done_loop(theirs, calls, seconds)
    their_seen = seen_dead(theirs, int(pid_file.read_text()))
    return [
        f"job.done() loop on a running job: ours {our_rate:.1f} scheduler calls/min, "
        f"submitit {their_rate:.1f}",
        f"job SIGKILLed -> done() is True: ours {our_seen:.0f} s, submitit {their_seen:.0f} s",
    ]


def _write_pid_and_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(3600)


def count_commands(folder: Path) -> Path:
    """Counting wrappers of Slurm's commands first on PATH (our commands and submitit's)."""
    log = folder / "calls.log"
    log.touch()
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for command in ("sacct", "squeue", "scontrol"):
        real = shutil.which(command)
        assert real is not None, command
        (bin_dir / command).write_text(
            f'#!/bin/sh\necho "{command} $*" >> {shlex.quote(str(log))}\n'
            f'exec {shlex.quote(real)} "$@"\n'
        )
        (bin_dir / command).chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return log


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
        mode = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
        style = "signal" if "preempt_send_user_signal" in mode.stdout else "stock"
        runs = [preemption(root / f"pre{i}") for i in range(args.repeat)]
        print(f"real preemption ({style} cluster): -> checkpoint durable on disk "
              f"{statistics.median(r[0] for r in runs):.1f} s; -> running again "
              f"{statistics.median(r[1] for r in runs):.1f} s")
        submitit = _submitit()
        if submitit is None:
            print("submitit is not installed: pip install submitit==1.5.4 for its rows")
            return
        theirs = their_array(submitit, root / "their-array")
        print(f"1000-task array, submitit {submitit.__version__}: submitted in {theirs:.2f} s "
              f"(ours: {seconds:.2f} s, ratio {theirs / seconds:.1f}x)")
        their_turns = [their_interrupt(submitit, root / f"their-rq{i}")
                       for i in range(args.repeat)]
        print(f"_interrupt -> next run started, submitit: "
              f"{statistics.median(their_turns):.1f} s (ours "
              f"{statistics.median(t[0] for t in turns):.1f} s)")
        log = count_commands(root)
        for line in polling_side_by_side(submitit, root / "polling", log, seconds=120):
            print(line)


if __name__ == "__main__":
    main()
