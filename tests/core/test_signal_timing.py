"""Signals at the edges of a run: before its callable is called, and runs nobody saw end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes
from jupyter_slurm_ckpt.core.events import append_event, read_events, summarize
from jupyter_slurm_ckpt.core.paths import JobPaths
from jupyter_slurm_ckpt.core.worker import record_lost_runs

from .jobs_for_tests import SlowToLoad


def test_a_signal_before_the_call_requeues_the_payload_as_it_is(
    local: submitit.LocalExecutor,
) -> None:
    # A preemption while the run still loads its payload (2 s), as a scheduler may send one
    # right after a job starts: checkpoint() is not called (it would fail: __call__ has not
    # run), the unchanged payload is requeued.
    job = local.submit(SlowToLoad(2.0))
    controller = wait_for(lambda: _controller(job), "the job's controller")
    worker = wait_for(lambda: processes.descendants(controller), "the worker process")[0]
    assert job.state == "PENDING"  # loading: not started yet
    os.kill(worker, signal.SIGUSR2)
    assert job.result(timeout=60) == "done"
    names = [e["event"] for e in job.events()]
    assert "checkpoint" not in names and "not_requeued" not in names
    (requeued,) = [e for e in job.events() if e["event"] == "requeued"]
    assert requeued["before_call"] is True and job.restart_count == 1


def _controller(job: submitit.Job[Any]) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(job.paths.local_process.read_text())
        if record.get("role") == "controller":
            return int(record["pid"])
    return None


def test_runs_that_ended_without_a_word_are_recorded(tmp_path: Path) -> None:
    paths = JobPaths(tmp_path, "7")
    append_event(paths.events, "submitted", cluster="slurm")
    append_event(paths.events, "started", run=0, node="n1", pid=1)
    paths.stdout.write_text("epoch 1\n")  # its last sign of life
    record_lost_runs(paths, restart=2)  # Slurm says this is run 2: runs 0 and 1 ended silently
    events = read_events(paths.events)
    lost = [e for e in events if e["event"] == "requeued"]
    assert [e["run"] for e in lost] == [1, 2]
    assert all(e["reason"] == "unknown" and e["lost_progress"] for e in lost)
    assert lost[0]["worked_s"] >= 0 and "worked_s" not in lost[1]
    assert summarize(events).restart_count == 2
    record_lost_runs(paths, restart=2)  # known now: nothing added
    assert len(read_events(paths.events)) == len(events)


def test_a_lost_run_that_had_checkpointed_kept_its_progress(tmp_path: Path) -> None:
    paths = JobPaths(tmp_path, "8")
    append_event(paths.events, "started", run=0, node="n1", pid=1)
    append_event(paths.events, "signal", reason="preemption", task=0)
    append_event(paths.events, "checkpoint", seconds=0.1, requeue=True, bytes=10)
    # ... its requeue was never recorded (killed right then), yet the checkpoint is on disk.
    record_lost_runs(paths, restart=1)
    (requeued,) = [e for e in read_events(paths.events) if e["event"] == "requeued"]
    assert requeued["lost_progress"] is False
