"""Polite polling: the watcher reads the job folder often and asks Slurm only what it cannot say.

The cadence is shortened for the tests (``conftest.QUICK_POLLING``: pending jobs every 2 s,
running ones every 6 s instead of 10 s and 60 s) so that each window of a test spans several
periods; the real defaults are measured by ``benchmarks/bench_polling.py``. Scheduler calls are
counted by the backend's own counter (every Slurm command of this process goes through it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import QUICK_POLLING
from slurm_jobs_for_tests import Gated, square_or_fail
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.slurm.commands import COUNTER
from jupyter_slurm_ckpt.backends.slurm.state import STATES
from jupyter_slurm_ckpt.views.status import JobStatus
from jupyter_slurm_ckpt.views.watcher import Watcher

pytestmark = pytest.mark.slurm

WAIT_S = 120.0
POLICY = QUICK_POLLING
QUERIES = ("sacct", "squeue", "scontrol")


def queries() -> int:
    return sum(COUNTER.by_command.get(name, 0) for name in QUERIES)


class Seen:
    """What a live widget would show: every status the watcher hands out, with its time."""

    def __init__(self) -> None:
        self.statuses: list[tuple[float, list[JobStatus]]] = []

    def __call__(self, statuses: list[JobStatus]) -> None:
        self.statuses.append((time.time(), statuses))

    def first(self, condition: Any) -> float | None:
        return next((t for t, s in self.statuses if condition(s)), None)


def test_running_jobs_cost_one_call_per_liveness_period(
    executor: submitit.AutoExecutor, gate: Path, accounting: bool
) -> None:
    jobs = executor.map_array(Gated(step_s=0.5), [str(gate)] * 4)
    wait_for(lambda: all(job.summary().runs == 1 for job in jobs), "4 jobs running", WAIT_S)
    seen = Seen()
    watcher = Watcher()  # the defaults of every live widget: a look at the folder each second
    subscription = watcher.watch(jobs, seen)
    try:
        wait_for(lambda: seen.statuses, "a first status", WAIT_S)
        before, start = queries(), time.monotonic()
        time.sleep(3 * POLICY.liveness_s)
        calls = queries() - before
        window = time.monotonic() - start
        gate.touch()
        wait_for(lambda: seen.first(lambda s: all(x.state == "COMPLETED" for x in s)),
                 "the widget to show the ends", WAIT_S)
    finally:
        subscription.cancel()
    assert watcher.ticks >= window  # the folder was read at least once a second
    # One batched liveness call for the four jobs per period (sacct in accounting mode).
    assert calls <= window / POLICY.liveness_s + 1, calls
    assert {s.state for _, statuses in seen.statuses for s in statuses} <= {"RUNNING", "COMPLETED"}
    # Their ends came from the folder: the widget showed them within a second of each one.
    for job in jobs:
        completed = next(e["t"] for e in job.events() if e["event"] == "completed")
        shown = seen.first(lambda s, j=job: any(x.job_id == j.job_id and x.done for x in s))
        assert shown is not None and shown - completed < 2 * Watcher().max_interval_s


def test_pending_jobs_are_asked_once_per_pending_period(
    executor: submitit.AutoExecutor, accounting: bool
) -> None:
    executor.update_parameters(slurm_additional_parameters={"begin": "now+1hour"})
    jobs = executor.map_array(square_or_fail, range(10), [-1] * 10)
    subscription = Watcher().watch(jobs, lambda statuses: None)
    try:
        wait_for(lambda: all(job.pending_reason == "BeginTime" for job in jobs),
                 "Slurm's reason", WAIT_S)
        before, start = queries(), time.monotonic()
        time.sleep(4 * POLICY.pending_s)
        calls = queries() - before
        window = time.monotonic() - start
    finally:
        subscription.cancel()
    # One refresh per period for the ten: squeue (pending jobs' live reason), plus sacct first
    # in accounting mode.
    per_refresh = 2 if accounting else 1
    assert 1 <= calls <= per_refresh * (window / POLICY.pending_s + 1), calls


def test_a_job_killed_without_a_word_is_seen_within_the_liveness_period(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    job = executor.submit(Gated(), str(gate))
    wait_for(lambda: job.summary().runs == 1, "the job to start", WAIT_S)
    seen = Seen()
    subscription = Watcher().watch([job], seen)
    try:
        wait_for(lambda: seen.first(lambda s: s[0].state == "RUNNING"), "RUNNING", WAIT_S)
        time.sleep(POLICY.liveness_s)  # a job that has run a while: polled at the slow pace
        # SIGKILL, as the kernel's OOM killer sends it: no event, no SIGTERM to catch, only the
        # liveness check can tell. (`scancel -s KILL` would not do: Slurm sends SIGTERM first.)
        pid = next(e["pid"] for e in job.events() if e["event"] == "started")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: seen.first(lambda s: s[0].done), "the end shown",
                 3 * POLICY.liveness_s + 30)
    finally:
        subscription.cancel()
    assert job.state == "FAILED" and "Slurm reports FAILED" in str(job.exception())


def sacct_state(job_id: str) -> str:
    """What the accounting database says of a job, asked directly (not through the cache)."""
    done = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip()


def test_slurm_away_is_said_and_the_folder_still_answers(
    executor: submitit.AutoExecutor, gate: Path, accounting: bool
) -> None:
    job = executor.submit(Gated(), str(gate))
    wait_for(lambda: job.summary().runs == 1 and job.state == "RUNNING", "RUNNING", WAIT_S)
    if accounting:  # slurmctld tells slurmdbd of the start a moment later (seconds on a slow
        # machine); stopped before that, it keeps the message and sacct still says PENDING,
        # which only the absent controller could correct.
        wait_for(lambda: sacct_state(job.job_id) == "RUNNING", "sacct to know it runs", WAIT_S)
    cluster = Path(__file__).with_name("cluster.sh")
    subprocess.run(["bash", str(cluster), "controller", "stop"], check=True)
    seen = Seen()
    subscription = Watcher().watch([job], seen)
    try:
        asked = time.time()
        STATES.expire(job.job_id)  # a look at Slurm is due now
        if accounting:  # slurmdbd answers sacct while the controller is away: nothing to say
            wait_for(lambda: getattr(STATES.cached(job.job_id), "answered", 0.0) > asked,
                     "sacct's answer", WAIT_S)
            assert STATES.last_error is None and job.state == "RUNNING"
        else:
            wait_for(lambda: seen.first(lambda s: s[0].scheduler_problem), "the problem",
                     WAIT_S)
            status = [s for _, s in seen.statuses if s[0].scheduler_problem][-1][0]
            assert status.state == "RUNNING"  # from the folder
            assert "Slurm cannot be reached" in (status.scheduler_problem or "")
    finally:
        subprocess.run(["bash", str(cluster), "controller", "start"], check=True)
        subscription.cancel()
    gate.touch()
    assert job.result(timeout=WAIT_S)["count"] >= 1


WATCHING_PROCESS = """
import json, sys, time
sys.path.insert(0, {tests!r})
import cloudpickle, slurm_jobs_for_tests
cloudpickle.register_pickle_by_value(slurm_jobs_for_tests)
import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.slurm.commands import COUNTER
from jupyter_slurm_ckpt.backends.slurm.records import PollPolicy
from jupyter_slurm_ckpt.backends.slurm.state import STATES
from jupyter_slurm_ckpt.views.watcher import Watcher

STATES.policy = PollPolicy(first_s=0.5, pending_s=2.0, liveness_s=6.0)
executor = submitit.AutoExecutor({folder!r})
executor.update_parameters(timeout_min=10)
job = executor.submit(slurm_jobs_for_tests.Gated(), {gate!r})
Watcher().watch([job], lambda statuses: None)
deadline = time.monotonic() + 120
while job.summary().runs < 1 and time.monotonic() < deadline:
    time.sleep(0.1)
time.sleep(2 * STATES.policy.liveness_s)  # past its first liveness look
job.cancel()
print(json.dumps(COUNTER.by_command))
"""


def test_a_process_that_submitted_never_asks_sacct_where_it_cannot_answer(
    tmp_path: Path, gate: Path, accounting: bool
) -> None:
    # A new kernel that submitted one job and shows its widget: Slurm's configuration, read at
    # the submission, says whether there is accounting storage. Without it, the first poll
    # used to ask sacct only to hear "accounting storage is disabled", then squeue: two
    # scheduler calls where one does (the second call of bench_polling's one-job window).
    code = WATCHING_PROCESS.format(
        tests=str(Path(__file__).parent), folder=str(tmp_path / "jobs"), gate=str(gate)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    commands = json.loads(done.stdout.strip().splitlines()[-1])
    if accounting:
        assert commands.get("sacct", 0) >= 1, commands  # its liveness look
    else:
        assert commands.get("sacct", 0) == 0, commands
        assert commands.get("squeue", 0) >= 1, commands  # its liveness look
