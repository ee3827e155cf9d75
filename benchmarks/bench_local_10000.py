"""A 10,000-element local job array on this machine: does it complete, and what does it cost?

Ours: ``map_array(square, range(10000))`` on the local backend with its default queue (as many
jobs at once as the machine's CPUs hold), from the call to the last result. Measured meanwhile,
every 0.1 s: the memory the machine uses (MemTotal - MemAvailable) above what it used before,
the number of processes above what ran before (with other people's work on the machine, both
count theirs too: read them as upper bounds), the load average; before and after, the kernel's
OOM kills (``dmesg``). Every element must end COMPLETED.

submitit's ``LocalExecutor`` on the same array starts one controller process and one job
process per element, with no queue, and waits 0.2 s between two elements of an array (its
``_throttle``): 10,000 elements take at least 2000 s to submit. Running that here would take
both cores for over half an hour, so its row is measured on the first ``--their-slice``
elements (default 200), and its figures for 10,000 are extrapolated from that rate.

Run: ``.venv/bin/python benchmarks/bench_local_10000.py [--size 10000] [--their-slice 200]``
(also ``bench_arrays.py --local-10000``). Never run the 10,000 on a version without the local
queue: every controller and job would start at once (the OOM killer fired at 10,000 here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import submitit as theirs

import jupyter_slurm_ckpt as ours

GIB = 1024**3


def square(x: int) -> int:
    return x * x


def _memory_used() -> int:
    fields = {}
    with open("/proc/meminfo") as stream:
        for line in stream:
            name, _, value = line.partition(":")
            fields[name] = int(value.split()[0]) * 1024
    return fields["MemTotal"] - fields["MemAvailable"]


def _processes() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def oom_kills() -> int:
    """How many OOM kills the kernel's log holds (``dmesg``; 0 when it cannot be read)."""
    done = subprocess.run(["dmesg"], capture_output=True, text=True, check=False)
    return sum(1 for line in done.stdout.splitlines() if "Killed process" in line
               or "Out of memory" in line)


class Sampler(threading.Thread):
    """Peak memory, processes and load of the machine while a measurement runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.base_memory, self.base_processes = _memory_used(), _processes()
        self.peak_memory = self.peak_processes = 0
        self.peak_load = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.peak_memory = max(self.peak_memory, _memory_used() - self.base_memory)
            self.peak_processes = max(self.peak_processes, _processes() - self.base_processes)
            self.peak_load = max(self.peak_load, os.getloadavg()[0])

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()

    def words(self) -> str:
        return (f"peak memory +{self.peak_memory / GIB:.2f} GiB, peak processes "
                f"+{self.peak_processes}, peak load {self.peak_load:.1f}")


def run_array(library: Any, folder: Path, size: int) -> tuple[float, float, list[str], Sampler]:
    """(s to submit, s from the call to the last result, the states, the sampler)."""
    executor = library.AutoExecutor(folder, cluster="local")
    executor.update_parameters(timeout_min=60)
    with Sampler() as sampler:
        started = time.perf_counter()
        jobs = executor.map_array(square, range(size))
        submitted = time.perf_counter() - started
        results = []
        for job in jobs:
            try:
                results.append(job.result())
            except Exception:  # counted below: the states say how it ended
                results.append(None)
        elapsed = time.perf_counter() - started
    assert results.count(None) or results == [i * i for i in range(size)]
    return submitted, elapsed, [job.state for job in jobs], sampler


def big_local_rows(root: Path, size: int = 10_000, their_slice: int = 200) -> list[str]:
    """The rows: ours on ``size`` elements, submitit's on ``their_slice`` of them."""
    rows = []
    kills = oom_kills()
    submitted, elapsed, states, sampler = run_array(ours, root / "ours-10000", size)
    ended = {state: states.count(state) for state in sorted(set(states))}
    rows.append(f"local {size}-element array, ours: submitted in {submitted:.1f} s, all "
                f"results in {elapsed:.0f} s; states {ended}; {sampler.words()}; "
                f"OOM kills {oom_kills() - kills}")
    kills = oom_kills()
    submitted, elapsed, states, sampler = run_array(theirs, root / "theirs-slice", their_slice)
    ended = {state: states.count(state) for state in sorted(set(states))}
    rate = submitted / their_slice
    rows.append(f"local {their_slice}-element array, submitit {theirs.__version__}: submitted in "
                f"{submitted:.1f} s ({rate * 1000:.0f} ms/element), all results in "
                f"{elapsed:.0f} s; states {ended}; {sampler.words()}; OOM kills "
                f"{oom_kills() - kills}")
    rows.append(f"  submitit, {size} elements extrapolated: at least {rate * size:.0f} s to "
                "submit (the submitting process blocked all along); no queue: what runs at once "
                "is bounded only by its 0.2 s pace")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--their-slice", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jsc-bench-10000-") as tmp:
        for line in big_local_rows(Path(tmp), args.size, args.their_slice):
            print(line, flush=True)


if __name__ == "__main__":
    main()
