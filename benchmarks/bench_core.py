"""Executor core vs submitit, side by side in one run: ratios, not absolute times.

Run with ``benchmarks/run.sh`` (it installs submitit from PyPI into the venv first).
Rows: trivial job submit->result latency (median), submit->job started (median: from the
``submit`` call to the first line of the job's callable, timestamped inside the job, so no
waiting or polling of the submitter is in it), ``_interrupt()``->resumed-run turnaround
(median), and the time to submit 50 jobs. Each figure is measured for both libraries on the
same machine in the same process run, alternating, so that load affects both alike.

What submit->result measures: the launch path *and* how soon ``result()`` notices the result.
submitit's ``wait()`` polls once a second, which is most of its figure; submit->job started is
the launch path alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

import jupyter_slurm_ckpt as ours

RESUME_TIMEOUT_S = 15.0


def trivial() -> int:
    return 1


class Resumable:
    """Records each start in a file; sleeps long enough to be interrupted."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self) -> int:
        with open(self.marker, "a") as stream:
            stream.write(f"{time.time()}\n")
        time.sleep(30)
        return 0

    def checkpoint(self) -> Any:
        return submitit.helpers.DelayedSubmission(self)


class OurResumable(Resumable):
    def checkpoint(self) -> Any:
        return ours.DelayedSubmission(self)


def executor_for(library: Any, folder: Path) -> Any:
    executor = library.AutoExecutor(folder, cluster="local")
    executor.update_parameters(timeout_min=5)
    return executor


def round_trip(library: Any, folder: Path) -> float:
    executor = executor_for(library, folder)
    start = time.perf_counter()
    job = executor.submit(trivial)
    job.result()
    return time.perf_counter() - start


class StartStamp:
    """Writes the time it starts at (the job's first line) to ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self) -> int:
        with open(self.marker, "w") as stream:
            stream.write(repr(time.time()))
        return 0


def start_latency(library: Any, folder: Path) -> float:
    executor = executor_for(library, folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "started-at"
    submitted_at = time.time()
    job = executor.submit(StartStamp(str(marker)))
    while not marker.exists() or not marker.read_text():
        time.sleep(0.002)  # the stamp is taken in the job: this loop's pace is not measured
    started_at = float(marker.read_text())
    job.result()
    return started_at - submitted_at


def interrupt_turnaround(library: Any, folder: Path, cls: type[Resumable]) -> float | None:
    executor = executor_for(library, folder)
    marker = folder / f"starts-{time.time_ns()}"
    folder.mkdir(parents=True, exist_ok=True)
    job = executor.submit(cls(str(marker)))

    def starts() -> int:
        return len(marker.read_text().splitlines()) if marker.exists() else 0

    deadline = time.monotonic() + RESUME_TIMEOUT_S
    while starts() < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)  # the job is well into its run (handlers installed)
    start = time.perf_counter()
    job._interrupt()
    while starts() < 2:
        if time.monotonic() > deadline + RESUME_TIMEOUT_S:
            job.cancel()
            return None
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    job.cancel()
    return elapsed


def submit_many(library: Any, folder: Path, count: int = 50) -> float:
    executor = executor_for(library, folder)
    start = time.perf_counter()
    jobs = [executor.submit(trivial) for _ in range(count)]
    elapsed = time.perf_counter() - start
    for job in jobs:
        job.result()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jsc-bench-"))
    rows: list[tuple[str, float | None, float | None]] = []

    def side_by_side(
        name: str,
        ours_fn: Callable[[Path], float | None],
        theirs_fn: Callable[[Path], float | None],
        repeats: int,
    ) -> None:
        ours_values, theirs_values = [], []
        for index in range(repeats):  # alternate, so that load hits both alike
            ours_values.append(ours_fn(root / f"ours-{name}-{index}"))
            theirs_values.append(theirs_fn(root / f"submitit-{name}-{index}"))
        rows.append((name, _median(ours_values), _median(theirs_values)))

    side_by_side(
        "trivial job submit->result (median)",
        lambda f: round_trip(ours, f),
        lambda f: round_trip(submitit, f),
        args.repeats,
    )
    side_by_side(
        "submit->job started (median)",
        lambda f: start_latency(ours, f),
        lambda f: start_latency(submitit, f),
        args.repeats,
    )
    side_by_side(
        "_interrupt()->resumed run (median)",
        lambda f: interrupt_turnaround(ours, f, OurResumable),
        lambda f: interrupt_turnaround(submitit, f, Resumable),
        3,
    )
    side_by_side(
        "submit 50 jobs (median)",
        lambda f: submit_many(ours, f),
        lambda f: submit_many(submitit, f),
        3,
    )

    print(
        f"{'measure':<40} {'jupyter_slurm_ckpt':>20} {'submitit ' + submitit.__version__:>20}"
        f" {'ratio':>10}"
    )
    for name, mine, theirs in rows:
        ratio = f"{theirs / mine:.1f}x" if mine and theirs else "n/a"
        print(f"{name:<40} {_fmt(mine):>20} {_fmt(theirs):>20} {ratio:>10}")
    print(
        "ratio = submitit time / our time (higher is better for us); "
        "n/a = did not resume within the timeout"
    )


def _median(values: list[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


def _fmt(value: float | None) -> str:
    return "did not resume" if value is None else f"{value * 1000:.0f} ms"


if __name__ == "__main__":
    main()
