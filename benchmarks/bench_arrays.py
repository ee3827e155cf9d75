"""Job arrays of 10, 100 and 1000 elements, side by side with submitit 1.5.4 in the same run.

For each backend asked for (``--backend local``, ``--backend slurm``: the running cluster, in
the polling mode it has) and each size, both libraries, alternating (submitit needs to be
importable: ``benchmarks/run.sh`` installs ``submitit==1.5.4`` into the venv):

- **submit**: the wall time of ``executor.map_array(square, range(n))``, from the call to its
  return (median of ``--repeat``). On Slurm the array is held by ``--begin=now+1hour`` so that
  nothing runs, then cancelled. Locally it is the whole array submitted for real (submitit's
  ``LocalExecutor`` waits 0.2 s between two jobs of an array, so its 1000-element submission is
  measured once, not ``--repeat`` times).
- **all results**: once every element of a submitted array has finished (its result file is on
  disk and the scheduler no longer lists it), the wall time of ``[job.result() for job in
  jobs]``, then of ``list(as_completed(jobs))``, in the submitting process, with the job
  objects ``map_array`` returned (median of ``--repeat`` arrays; a 1000-element array, which
  runs for minutes, once). Scheduler calls made meanwhile are counted (ours: none).

``--local-10000`` adds the 10,000-element local array (ours; submitit's on a slice): its wall
time, the peak memory the machine used meanwhile (MemTotal - MemAvailable, sampled every
0.1 s, above what it used before), the most processes of the run alive at once, and whether
the kernel's OOM killer fired (``dmesg``).

Run: ``.venv/bin/python benchmarks/bench_arrays.py --backend local``, and with a cluster
(``eval "$(bash tests/slurm/cluster.sh start ...)"``) ``--backend slurm``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import submitit as theirs
from bench_local_10000 import big_local_rows

import jupyter_slurm_ckpt as ours
from jupyter_slurm_ckpt.backends.slurm.commands import COUNTER

SUBMITIT_VERSION = "1.5.4"
SIZES = (10, 100, 1000)
WAIT_S = 1800.0


def square(x: int) -> int:
    return x * x


def executor(library: Any, backend: str, folder: Path, held: bool) -> Any:
    made = library.AutoExecutor(folder, cluster=backend)
    extra = {"slurm_additional_parameters": {"begin": "now+1hour"}} if held else {}
    made.update_parameters(timeout_min=10, **extra)
    return made


def submit(
    library: Any, backend: str, folder: Path, size: int, held: bool
) -> tuple[float, list[Any]]:
    """(s for map_array of ``size`` elements, the jobs)."""
    made = executor(library, backend, folder, held)
    started = time.perf_counter()
    jobs = made.map_array(square, range(size))
    return time.perf_counter() - started, jobs


def cancel_slurm(jobs: list[Any]) -> None:
    subprocess.run(["scancel", str(jobs[0].job_id).split("_")[0]], check=False)


def wait_finished(jobs: list[Any], backend: str) -> None:
    """Until every element's result file is on disk and the scheduler lists none of them (not
    through either library: that would warm their caches)."""
    deadline = time.monotonic() + WAIT_S
    while not all(job.paths.result_pickle.exists() for job in jobs):
        if time.monotonic() > deadline:
            raise RuntimeError("the array did not finish")
        time.sleep(0.5)
    if backend == "slurm":
        root = str(jobs[0].job_id).split("_")[0]
        while subprocess.run(["squeue", "-h", "-j", root], capture_output=True,
                             text=True).stdout.strip():
            time.sleep(0.5)
    else:
        time.sleep(1.0)  # the last controllers record their end


def all_results(jobs: list[Any], library: Any) -> tuple[float, float, int]:
    """(s for every result, s for as_completed over all, scheduler calls meanwhile)."""
    calls = COUNTER.total
    started = time.perf_counter()
    results = [job.result() for job in jobs]
    elapsed = time.perf_counter() - started
    assert results == [i * i for i in range(len(jobs))]
    started = time.perf_counter()
    done = list(library.helpers.as_completed(jobs))
    completed = time.perf_counter() - started
    assert len(done) == len(jobs)
    return elapsed, completed, COUNTER.total - calls


def row(name: str, mine: float, their: float) -> str:
    return f"{name:<46} {mine * 1000:>12.0f} ms {their * 1000:>12.0f} ms {mine / their:>8.2f}x"


def side_by_side_submits(backend: str, root: Path, size: int, repeat: int) -> str:
    held = backend == "slurm"
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for index in range(repeat):
        for name, library in (("ours", ours), ("theirs", theirs)):
            seconds, jobs = submit(library, backend, root / f"{name}-submit-{size}-{index}",
                                   size, held)
            times[name].append(seconds)
            if held:
                cancel_slurm(jobs)
            else:
                wait_finished(jobs, backend)
    return row(f"{backend}: submit {size} (median of {repeat})",
               statistics.median(times["ours"]), statistics.median(times["theirs"]))


def side_by_side_results(backend: str, root: Path, size: int, repeat: int) -> list[str]:
    """Rows of all results and as_completed (medians of ``repeat`` arrays of each library)."""
    found: dict[str, list[tuple[float, float, int]]] = {"ours": [], "theirs": []}
    for index in range(repeat):
        for name, library in (("ours", ours), ("theirs", theirs)):
            _, jobs = submit(library, backend, root / f"{name}-results-{size}-{index}", size,
                             held=False)
            wait_finished(jobs, backend)
            found[name].append(all_results(jobs, library))

    def median(name: str, column: int) -> float:
        return statistics.median(row[column] for row in found[name])

    calls = max(row[2] for row in found["ours"])
    label = f"{backend}: all results of {size} ({calls} scheduler calls; median of {repeat})"
    return [
        row(label, median("ours", 0), median("theirs", 0)),
        row(f"{backend}: as_completed over {size}", median("ours", 1), median("theirs", 1)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=("local", "slurm"), required=True)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--local-10000", action="store_true", help="the 10,000-element row")
    args = parser.parse_args()
    if theirs.__version__ != SUBMITIT_VERSION:
        raise SystemExit(f"submitit {theirs.__version__} is installed, not {SUBMITIT_VERSION}")
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'measure':<46} {'ours':>15} {'submitit ' + SUBMITIT_VERSION:>15} {'ratio':>9}")
    with tempfile.TemporaryDirectory(prefix="jsc-bench-arrays-") as tmp:
        root = Path(tmp)
        for backend in args.backend:
            for size in sizes:
                # submitit's local arrays wait 0.2 s per element: its 1000 is measured once.
                repeat = 1 if backend == "local" and size >= 1000 else args.repeat
                print(side_by_side_submits(backend, root, size, repeat), flush=True)
            for size in sizes:  # a 1000-element array runs for minutes: once
                repeat = 1 if size >= 1000 else args.repeat
                for line in side_by_side_results(backend, root, size, repeat):
                    print(line, flush=True)
        if args.local_10000:
            for line in big_local_rows(root):
                print(line, flush=True)
    print("ratio = our time / submitit's (below 1: we are faster)")


if __name__ == "__main__":
    main()
