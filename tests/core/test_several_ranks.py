"""A job of several tasks: only task 0 checkpoints, and the others follow it into the next run.

When task 0 checkpoints and leaves, the other ranks' collectives break (gloo: "Connection
closed by peer") and their callables raise. That failure belongs to the run being requeued,
not to the job: it must not be recorded as the job's failure nor left as a task's result.
Seen first with two DDP ranks in ``notebooks/06_pytorch_checkpoints.ipynb``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from support import WAIT_S, wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.events import read_events


class PeerLost(submitit.Checkpointable):
    """In its first run, task 1 raises as soon as the checkpoint signal reached it."""

    def __call__(self, folder: str) -> tuple[int, int]:
        env = submitit.JobEnvironment()
        rank, run = env.global_rank, env.restart_count
        Path(folder, f"task{rank}-run{run}").write_text("")
        while run == 0:
            events = read_events(env.paths.events)
            if rank == 1 and any(e["event"] == "signal" and e.get("task") == 1 for e in events):
                raise RuntimeError("Connection closed by peer (rank 0 left)")
            time.sleep(0.01)
        return rank, run

    def checkpoint(self, folder: str) -> submitit.DelayedSubmission[Any]:
        # Task 0 leaves once task 1 has failed: in a real job the failure comes after, when
        # the peer is gone, but here it must come before the requeue stops task 1.
        paths = submitit.JobEnvironment().paths.for_task(1)
        wait_for(lambda: _failed(paths), "task 1 to fail", WAIT_S)
        return super().checkpoint(folder)


def _failed(paths: Any) -> bool:
    said = "stopped by" in paths.stderr.read_text()  # with the requeue, as it should
    recorded = any(e["event"] == "failed" for e in read_events(paths.events))  # as the job's
    return said or recorded


def test_a_rank_failing_after_the_checkpoint_signal_follows_the_requeue(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    local.update_parameters(tasks_per_node=2)
    job = local.submit(PeerLost(), str(tmp_path))
    wait_for(lambda: all((tmp_path / f"task{t}-run0").exists() for t in (0, 1)), "both tasks")
    job._interrupt()
    assert job.results(timeout=WAIT_S) == [(0, 1), (1, 1)]
    events = read_events(job.paths.events)
    assert [e for e in events if e["event"] == "failed"] == [], events
    assert job.state == "COMPLETED"
    assert "task 1 stopped by the preemption signal's requeue" in str(job.stderr(1))
