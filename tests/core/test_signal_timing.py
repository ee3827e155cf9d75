"""Signals at the edges of a run: before its callable is called, and runs nobody saw end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes
from jupyter_slurm_ckpt.core.events import append_event, read_events, recorded_end, summarize
from jupyter_slurm_ckpt.core.paths import JobPaths
from jupyter_slurm_ckpt.core.runs import ended_already, record_lost_runs

from .conftest import wait_running_run
from .jobs_for_tests import Counter, SlowToLoad, SlowToPickle, slow_to_pickle


def test_a_signal_before_the_call_requeues_the_payload_as_it_is(
    local: submitit.LocalExecutor,
) -> None:
    # A preemption while the run still loads its payload (5 s), as a scheduler may send one
    # right after a job starts: checkpoint() is not called (it would fail: __call__ has not
    # run), the unchanged payload is requeued.
    job = local.submit(SlowToLoad(5.0))
    controller = wait_for(lambda: _controller(job), "the job's controller")
    worker = wait_for(lambda: processes.descendants(controller), "the worker process")[0]
    assert job.state == "PENDING"  # loading: not started yet
    os.kill(worker, signal.SIGUSR2)
    assert job.result(timeout=60) == "done"
    names = [e["event"] for e in job.events()]
    assert "checkpoint" not in names and "not_requeued" not in names
    (requeued,) = [e for e in job.events() if e["event"] == "requeued"]
    assert requeued["before_call"] is True and job.restart_count == 1


def test_a_termination_while_the_payload_loads_is_honoured_at_once(
    local: submitit.LocalExecutor, tmp_path: Path
) -> None:
    # A large payload may load for longer than the run has after a SIGTERM (KillWait): the
    # signal is handled at once, not when the load ends (before the fix it was held until then).
    loaded = tmp_path / "loaded"
    job = local.submit(SlowToLoad(20.0, str(loaded)))
    controller = wait_for(lambda: _controller(job), "the job's controller")
    worker = wait_for(lambda: processes.descendants(controller), "the worker process")[0]
    os.kill(worker, signal.SIGTERM)
    wait_for(lambda: not processes.is_alive(worker), "the worker to end", 60)
    assert not loaded.exists()  # it ended before its payload was loaded
    assert not [e for e in job.events() if e["event"] == "started"]


def test_a_termination_while_the_result_is_written_keeps_the_result(
    local: submitit.LocalExecutor,
) -> None:
    # The callable has returned; its result takes a second to write and a SIGTERM (as at the end
    # of a preemption's grace time) lands meanwhile. Before the fix the default action killed
    # the run mid-write and the finished result was lost.
    job = local.submit(slow_to_pickle, 1.0)
    assert isinstance(job.result(timeout=60), SlowToPickle)
    assert [e["event"] for e in job.events()][-1] == "completed"


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


def test_a_run_of_an_ended_job_knows_it_has_ended(tmp_path: Path) -> None:
    # Slurm 24.05+ starts a job again that ended in a preemption's grace time: that run must
    # not call the callable again. Run 0's other tasks may find task 0's end: theirs too.
    paths = JobPaths(tmp_path, "9")
    append_event(paths.events, "started", run=0, node="n1", pid=1)
    assert ended_already(paths, 1, 1) is None
    append_event(paths.events, "completed", task=1)  # another task's end is not the job's
    assert ended_already(paths, 1, 1) is None
    paths.result_pickle.write_bytes(b"")
    assert ended_already(paths, 0, 1) is None
    assert ended_already(paths, 1, 1) == "its results are written"
    paths.result_pickle.unlink()
    append_event(paths.events, "cancelled", by="slurm")
    assert ended_already(paths, 1, 1) == "it ended CANCELLED" and ended_already(paths, 0, 1) is None


def test_a_task_that_completed_in_a_run_that_ended_nothing_runs_again(tmp_path: Path) -> None:
    # Two tasks: task 0 completes, task 1 is preempted and Slurm requeues the job. The job
    # did not end: run 1 runs both tasks (it once ended at once: "some task completed").
    paths = JobPaths(tmp_path, "7")
    append_event(paths.events, "started", run=0, node="n1", pid=1)
    append_event(paths.events, "started", run=0, task=1, node="n1", pid=2)
    paths.result_pickle.write_bytes(b"")
    append_event(paths.events, "completed", task=0)
    assert ended_already(paths, 1, 2) is None
    assert recorded_end(read_events(paths.events), 2) is None
    append_event(paths.events, "requeued", run=1, by="scheduler")
    append_event(paths.events, "started", run=1, task=1, node="n1", pid=3)
    paths.for_task(1).result_pickle.write_bytes(b"")
    append_event(paths.events, "completed", task=1)  # run 1's task 1, before task 0 started
    assert ended_already(paths, 1, 2) is None  # task 0's result is run 0's
    assert recorded_end(read_events(paths.events), 2) is None
    append_event(paths.events, "started", run=1, node="n1", pid=4)
    append_event(paths.events, "completed", task=0)
    assert ended_already(paths, 2, 2) == "it ended COMPLETED"
    assert recorded_end(read_events(paths.events), 2) is not None


def test_a_lost_run_that_had_checkpointed_kept_its_progress(tmp_path: Path) -> None:
    paths = JobPaths(tmp_path, "8")
    append_event(paths.events, "started", run=0, node="n1", pid=1)
    append_event(paths.events, "signal", reason="preemption", task=0)
    append_event(paths.events, "checkpoint", seconds=0.1, requeue=True, bytes=10)
    # ... its requeue was never recorded (killed right then), yet the checkpoint is on disk.
    record_lost_runs(paths, restart=1)
    (requeued,) = [e for e in read_events(paths.events) if e["event"] == "requeued"]
    assert requeued["lost_progress"] is False


def test_an_ended_job_is_resubmitted_from_its_last_checkpoint(folder: Path) -> None:
    # A preemption checkpoints (count > 0), then a timeout is refused (max_num_timeout=0): the
    # run is killed at its limit and the job ends TIMEOUT, its checkpoint on disk.
    executor = submitit.LocalExecutor(folder, max_num_timeout=0)
    executor.update_parameters(signal_delay_s=1)
    job = executor.submit(Counter(step_s=0.05), 80)
    wait_running_run(job, 0)
    wait_for(lambda: job.summary().runs == 1 and time.sleep(0.5) is None, "some counting")
    job._interrupt()
    wait_running_run(job, 1)
    job._interrupt(timeout=True)
    job.wait(timeout=60)
    assert job.state == "TIMEOUT"
    with pytest.raises(submitit.UncompletedJobError, match="only a job that ended"):
        executor.submit(Counter(), 1).resubmit()
    again = job.resubmit()
    assert again.job_id != job.job_id and again.info.resubmission_of == job.job_id
    result = again.result(timeout=60)
    # The checkpointed state (its run 0), then the new job's first run: a fresh one gives [0].
    assert result["count"] == 80 and result["runs"] == [0, 0]
    assert [e.get("job_id") for e in job.events() if e["event"] == "resubmitted"] == [
        again.job_id
    ]
    assert again.events()[0]["resubmission_of"] == job.job_id
    with pytest.raises(submitit.UncompletedJobError, match="completed"):
        again.resubmit()
