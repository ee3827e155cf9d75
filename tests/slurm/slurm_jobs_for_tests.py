"""Callables the Slurm tests submit. Pickled by value (see conftest): the job needs no tests/."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jupyter_slurm_ckpt import Checkpointable, JobEnvironment


class Gated(Checkpointable):
    """Counts until its gate file exists (and at least ``minimum`` steps); survives requeues.

    The test opens the gate when it has interrupted the job as often as it wants, so a loaded
    machine can never make the job finish before the interrupts it is tested with.
    """

    def __init__(self, step_s: float = 0.05, verbose: bool = False) -> None:
        self.count = 0
        self.step_s = step_s
        self.verbose = verbose
        self.runs: list[int] = []
        self.resumed_from: list[int] = []

    def __call__(self, gate: str, minimum: int = 1) -> dict[str, Any]:
        self.runs.append(JobEnvironment().restart_count)
        self.resumed_from.append(self.count)
        while self.count < minimum or not Path(gate).exists():
            self.count += 1
            if self.verbose:
                print(f"step {self.count}", flush=True)
            time.sleep(self.step_s)
        return {"count": self.count, "runs": self.runs, "resumed_from": self.resumed_from}


def square_or_fail(x: int, bad: int) -> int:
    """``x * x``, except for ``bad``, which raises."""
    if x == bad:
        raise ValueError(f"element {x} fails on purpose")
    return x * x


def die_without_result(code: int) -> None:
    """Leave the process at once: no result file, no event (as a segfault or OOM kill would)."""
    os._exit(code)


def whoami() -> dict[str, Any]:
    """What the job sees of itself (multi-task: one result per task)."""
    env = JobEnvironment()
    return {
        "rank": env.global_rank,
        "num_tasks": env.num_tasks,
        "job_id": env.job_id,
        "cluster": env.cluster,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
