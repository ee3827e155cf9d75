"""The checkpoint protocol end to end on the local backend (real processes, real signals)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.events import read_events

from .conftest import wait_running_run
from .jobs_for_tests import Counter, NotCheckpointable, OnlyDunderCheckpoint

MAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jupyter_slurm_ckpt as submitit

    class Training(submitit.helpers.Checkpointable):  # defined in __main__: pickled by value
        def __init__(self):
            self.epoch = 0
            self.starts = []
        def __call__(self, epochs):
            self.starts.append(self.epoch)
            while self.epoch < epochs:
                time.sleep(0.05)
                self.epoch += 1
            return {"epoch": self.epoch, "starts": self.starts,
                    "restart_count": submitit.JobEnvironment().restart_count}

    def wait_run(job, run):
        while not (job.summary().runs > run and job.state == "RUNNING"):
            time.sleep(0.01)
        while job.summary().runs <= run:
            time.sleep(0.01)

    executor = submitit.AutoExecutor(sys.argv[1], cluster="local")
    executor.update_parameters(timeout_min=10, name="training")
    job = executor.submit(Training(), 40)
    for run, timeout in enumerate([False, False, True]):
        wait_run(job, run)
        time.sleep(0.3)
        job._interrupt(timeout=timeout)
    print(json.dumps({"job_id": job.job_id, "result": job.result(timeout=60),
                      "restart_count": job.restart_count}))
    """
)


def test_main_class_preempted_twice_and_timed_out_once(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(MAIN_SCRIPT)
    folder = tmp_path / "logs"
    done = subprocess.run(
        [sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert result["epoch"] == 40
    assert result["restart_count"] == 3
    assert report["restart_count"] == 3
    # Each run resumed where the checkpoint left it: strictly increasing progress, never 0 again.
    starts = result["starts"]
    assert starts[0] == 0 and len(starts) == 4
    assert all(b > a for a, b in itertools.pairwise(starts)), starts
    events = read_events(folder / f"{report['job_id']}_events.jsonl")
    names = [e["event"] for e in events]
    assert names[0] == "submitted"
    assert names.count("started") == 4
    assert [e["reason"] for e in events if e["event"] == "signal"] == [
        "preemption",
        "preemption",
        "timeout",
    ]
    assert [e["run"] for e in events if e["event"] == "requeued"] == [1, 2, 3]
    assert [e["timeouts_left"] for e in events if e["event"] == "requeued"] == [3, 3, 2]
    assert all(e["requeue"] for e in events if e["event"] == "checkpoint")
    assert names[-1] == "completed"


def test_max_num_timeout_stops_at_the_second_timeout(local: submitit.LocalExecutor) -> None:
    local.update_parameters(max_num_timeout=1, signal_delay_s=2)
    job = local.submit(Counter(step_s=0.05), 10_000)
    wait_running_run(job, 0)
    job._interrupt(timeout=True)
    wait_running_run(job, 1)
    job._interrupt(timeout=True)
    with pytest.raises(submitit.UncompletedJobError, match=r"timed out 2 times, max_num_timeout=1"):
        job.result(timeout=60)
    assert job.state == "TIMEOUT"
    assert job.restart_count == 1


def test_dunder_checkpoint_alone_is_enough(local: submitit.LocalExecutor) -> None:
    job = local.submit(OnlyDunderCheckpoint(), 50)
    wait_running_run(job, 0)
    wait_for(lambda: "started" in [e["event"] for e in job.events()], "the start")
    import time

    time.sleep(0.3)
    job._interrupt()
    steps, resumed_from = job.result(timeout=60)
    assert steps == 50
    assert len(resumed_from) == 2 and resumed_from[1] > 0


def test_real_time_limit_signals_and_requeues(local: submitit.LocalExecutor) -> None:
    # 3 s limit, warning 1 s before it: 4.5 s of work needs at least two runs.
    local.update_parameters(timeout_min=0.05, signal_delay_s=1)
    job = local.submit(Counter(step_s=0.05), 90)
    result = job.result(timeout=90)
    assert result["count"] == 90
    reasons = [e["reason"] for e in job.events() if e["event"] == "signal"]
    assert reasons and set(reasons) == {"timeout"}
    assert job.restart_count == len(reasons) >= 1
    assert result["runs"] == list(range(job.restart_count + 1))


def test_not_checkpointable_restarts_on_preemption_and_stops_on_timeout(
    local: submitit.LocalExecutor,
) -> None:
    local.update_parameters(signal_delay_s=1)
    job = local.submit(NotCheckpointable(), 2.0)
    wait_running_run(job, 0)
    job._interrupt()
    assert job.result(timeout=60) == 1  # ran again from scratch, as run 1
    assert [e.get("from_scratch") for e in job.events() if e["event"] == "requeued"] == [True]

    job = local.submit(NotCheckpointable(), 30.0)
    wait_running_run(job, 0)
    job._interrupt(timeout=True)
    with pytest.raises(submitit.UncompletedJobError, match="has no checkpoint method"):
        job.result(timeout=60)
    assert job.state == "TIMEOUT"


def test_checkpoint_returning_none_is_not_requeued(local: submitit.LocalExecutor) -> None:
    class Declines(Counter):
        def checkpoint(self, *args: object, **kwargs: object) -> None:
            return None

    local.update_parameters(signal_delay_s=1)
    job = local.submit(Declines(step_s=0.05), 10_000)
    wait_running_run(job, 0)
    job._interrupt()
    with pytest.raises(submitit.UncompletedJobError, match=r"checkpoint\(\) returned None"):
        job.result(timeout=60)
    assert job.state == "PREEMPTED"


def test_requeue_keeps_job_id_and_appends_logs(local: submitit.LocalExecutor) -> None:
    class Talkative(Counter):
        def __call__(self, n: int) -> dict[str, object]:
            print(f"run {submitit.JobEnvironment().restart_count} says hi", flush=True)
            return super().__call__(n)

    job = local.submit(Talkative(step_s=0.05), 30)
    wait_running_run(job, 0)
    wait_for(lambda: "run 0 says hi" in (job.stdout() or ""), "run 0 to speak")
    job._interrupt()
    job.result(timeout=60)
    stdout = job.stdout() or ""
    assert "run 0 says hi" in stdout and "run 1 says hi" in stdout
    assert {p.name.split("_")[0] for p in job.paths.folder.glob("*_job.json")} == {job.job_id}


def test_a_signal_in_the_middle_of_a_print_still_requeues(local: submitit.LocalExecutor) -> None:
    # The job prints all the time: the checkpoint signal lands inside a write to stdout, whose
    # buffer refuses to be entered again from the handler (it once raised "reentrant call
    # inside BufferedWriter" and the requeue was lost).
    class Chatty(Counter):
        def __call__(self, n: int) -> dict[str, object]:
            line = "x" * 200
            while self.count < n:
                for _ in range(200):
                    print(line)
                self.count += 1
            return {"count": self.count}

    job = local.submit(Chatty(), 10**9)
    for run in range(3):
        wait_running_run(job, run)
        wait_for(lambda: job.paths.stdout.exists() and job.paths.stdout.stat().st_size > 0,
                 "output")
        job._interrupt()
    wait_running_run(job, 3)
    names = [e["event"] for e in job.events()]
    assert names.count("requeued") == 3 and "not_requeued" not in names
    job.cancel()
