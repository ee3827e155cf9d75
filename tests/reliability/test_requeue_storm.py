"""A job preempted 50 times in a row, as fast as it restarts."""

from __future__ import annotations

import time
from pathlib import Path

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.events import EventReader

STORM = 50


class Steps(submitit.Checkpointable):
    def __init__(self) -> None:
        self.done = 0
        self.runs_seen: list[int] = []

    def __call__(self, total: int) -> dict[str, object]:
        self.runs_seen.append(submitit.JobEnvironment().restart_count)
        while self.done < total:
            self.done += 1
            time.sleep(0.01)
        return {"done": self.done, "runs_seen": self.runs_seen}


def test_fifty_preemptions_in_a_row(tmp_path: Path) -> None:
    job = submitit.LocalExecutor(tmp_path).submit(Steps(), 400)
    interrupted = 0
    deadline = time.monotonic() + 240
    while interrupted < STORM:
        assert time.monotonic() < deadline, f"storm stalled after {interrupted} interrupts"
        assert not job.done(), f"{job} ended during the storm: {job.events()[-1]}"
        summary = job.summary()
        if summary.runs == interrupted + 1 and job.state == "RUNNING":
            job._interrupt()  # as soon as the run has started: no time to make progress
            interrupted += 1
        else:
            time.sleep(0.001)
    result = job.result(timeout=120)
    assert result["done"] == 400
    # A run interrupted while still loading its payload never reaches __call__: the runs that
    # did are in order, and the last one is run 50.
    runs_seen = result["runs_seen"]
    assert runs_seen == sorted(set(runs_seen)) and runs_seen[-1] == STORM
    assert job.restart_count == STORM
    reader = EventReader(job.paths.events)
    events = reader.read()
    assert reader.bad_lines == 0
    names = [e["event"] for e in events]
    assert names.count("signal") == names.count("checkpoint") == names.count("requeued") == STORM
    assert names.count("started") == STORM + 1
    assert [e["run"] for e in events if e["event"] == "started"] == list(range(STORM + 1))
    assert [e["run"] for e in events if e["event"] == "requeued"] == list(range(1, STORM + 1))
    # Every requeue follows its own signal and checkpoint, and precedes the next start.
    order = [n for n in names if n in ("signal", "checkpoint", "requeued", "started")]
    assert order == ["started"] + ["signal", "checkpoint", "requeued", "started"] * STORM
    assert names[0] == "submitted" and names[-1] == "completed"
