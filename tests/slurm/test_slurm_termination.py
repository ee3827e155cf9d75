"""Preemption as real clusters do it: SIGTERM without warning, lost runs, a controller away.

CI runs these on the tuned cluster (``--preemption signal``: the preempted job gets USR2 at once)
and on a stock one (``--preemption stock``: its only notice is the SIGTERM at the end of the grace
time). A SIGTERM alone cannot tell a preemption from ``scancel`` or the time limit; the job asks
Slurm (``scontrol show job``) and each case is checked here, on both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slurm_jobs_for_tests import Gated
from support import wait_for

import jupyter_slurm_ckpt as submitit

pytestmark = pytest.mark.slurm

WAIT_S = 120.0
CLUSTER_SH = Path(__file__).with_name("cluster.sh")


def events(job: submitit.Job[Any], name: str) -> list[dict[str, Any]]:
    return [e for e in job.events() if e["event"] == name]


def running(job: submitit.Job[Any], run: int) -> None:
    """Wait until run ``run`` (0 first) of ``job`` has started."""
    wait_for(lambda: job.summary().runs > run and job.state == "RUNNING", f"run {run}", WAIT_S)


def worker_pid(job: submitit.Job[Any]) -> int:
    return int(events(job, "started")[-1]["pid"])


def node_of(job: submitit.Job[Any]) -> str:
    """The Slurm node the job runs on (its own node name, e.g. n1)."""
    out = subprocess.run(["squeue", "-h", "-j", job.job_id, "-o", "%N"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out, f"job {job.job_id} has no node"
    return out


def preempt(job: submitit.Job[Any]) -> str:
    """Preempt ``job`` (on ``low``) by an exclusive ``high`` job on its node; its id."""
    return subprocess.run(
        ["sbatch", "--parsable", "--exclusive", "--partition=high", f"--nodelist={node_of(job)}",
         "--output=/dev/null", "--job-name=preemptor", "--wrap", "sleep 1"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def preempted_once(
    executor: submitit.AutoExecutor, gate: Path, job: submitit.Job[Any] | None = None
) -> submitit.Job[Any]:
    """A job (by default a ``Gated`` one) preempted once in its first run, then let finish: it
    resumed from its checkpoint."""
    job = job or executor.submit(Gated(), str(gate), 3)
    running(job, 0)
    high = preempt(job)
    try:
        running(job, 1)
    finally:
        subprocess.run(["scancel", high], check=False)
    gate.touch()
    result = job.result(timeout=WAIT_S)
    assert result["runs"] == [0, 1] and result["resumed_from"][1] > 0  # from its checkpoint
    return job


@pytest.fixture
def exclusive(executor: submitit.AutoExecutor) -> submitit.AutoExecutor:
    # On a node of 2 cores, jobs share it unless both ask for it whole.
    executor.update_parameters(slurm_exclusive=True)
    return executor


@pytest.fixture
def cancel_mode() -> Iterator[None]:
    """The ``low`` partition with ``PreemptMode=CANCEL`` for one test (a preempted job would
    end CANCELLED), put back to REQUEUE afterwards."""
    subprocess.run(["scontrol", "update", "partitionname=low", "preemptmode=cancel"], check=True)
    try:
        yield
    finally:
        subprocess.run(["scontrol", "update", "partitionname=low", "preemptmode=requeue"],
                       check=True)


def test_real_preemption_resumes_from_the_checkpoint(
    exclusive: submitit.AutoExecutor, gate: Path, slurm_cluster: Any
) -> None:
    job = preempted_once(exclusive, gate)
    (signalled,) = events(job, "signal")
    assert signalled["reason"] == "preemption"
    # Stock clusters send no warning: the SIGTERM at the end of the grace time is the notice.
    assert signalled.get("via") == ("SIGTERM" if slurm_cluster.preemption == "stock" else None)
    (checkpoint,) = events(job, "checkpoint")
    assert checkpoint["requeue"] is True
    (requeued,) = events(job, "requeued")
    # Stock: Slurm requeued the job itself (PreemptMode=REQUEUE); tuned: the job asked for it.
    assert requeued.get("by") == ("scheduler" if slurm_cluster.preemption == "stock" else None)
    assert job.restart_count == 1 and job.summary().preemptions == 1


def test_preemption_that_would_cancel_the_job_requeues_it(
    exclusive: submitit.AutoExecutor, gate: Path, cancel_mode: None
) -> None:
    # PreemptMode=CANCEL: Slurm would end the job; it checkpoints and requeues itself instead.
    job = preempted_once(exclusive, gate)
    assert [e["reason"] for e in events(job, "signal")] == ["preemption"]
    assert "by" not in events(job, "requeued")[0]  # asked for by the job
    assert job.state == "COMPLETED"


def test_scancel_of_a_running_job_does_not_checkpoint(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    job = executor.submit(Gated(), str(gate))
    running(job, 0)
    pid = worker_pid(job)
    subprocess.run(["scancel", job.job_id], check=True)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the worker to end", WAIT_S)
    job.wait(timeout=WAIT_S)
    assert job.state == "CANCELLED"
    assert events(job, "checkpoint") == [] and events(job, "requeued") == []
    assert events(job, "signal") == []
    (cancelled,) = events(job, "cancelled")  # the worker saw it first: Slurm's SIGTERM
    assert cancelled["by"] == "slurm"
    time.sleep(8)  # a requeue would have made it PENDING again within ~6 s
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job.job_id, "-o", "%T"],
                         capture_output=True, text=True).stdout.split()
    assert out == ["CANCELLED"] and job.summary().runs == 1


def test_time_limit_without_warning_counts_as_a_timeout(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # No warning signal at all (signal_delay_s=0): the SIGTERM at the limit is the only notice.
    executor.update_parameters(slurm_signal_delay_s=0)
    job = executor.submit(Gated(), str(gate), 3)
    running(job, 0)
    # The limit, brought close: Slurm ends the run at its next limit check (<= 30 s).
    subprocess.run(["scontrol", "update", f"jobid={job.job_id}", "EndTime=now+2"], check=True)
    running(job, 1)
    gate.touch()
    result = job.result(timeout=WAIT_S)
    assert result["runs"] == [0, 1] and result["resumed_from"][1] > 0
    (signalled,) = events(job, "signal")
    assert (signalled["reason"], signalled["via"]) == ("timeout", "SIGTERM")
    assert job.summary().timeouts == 1 and job.restart_count == 1


def test_a_run_killed_without_a_word_is_reported_as_lost(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    job = executor.submit(Gated(verbose=True), str(gate), 3)
    running(job, 0)
    wait_for(lambda: "step 20" in (job.stdout() or ""), "some work that will be lost", WAIT_S)
    # SIGKILL (an OOM kill, a crash): no handler runs. Slurm then requeues the job, as it does
    # after a node failure (which cannot be caused on demand here without waiting minutes).
    os.kill(worker_pid(job), signal.SIGKILL)
    wait_for(lambda: subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job.job_id, "-o", "%T"], capture_output=True,
        text=True).stdout.strip() in ("FAILED", "COMPLETED"), "Slurm to see the run end", WAIT_S)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    running(job, 1)
    (requeued,) = events(job, "requeued")
    assert requeued["reason"] == "unknown" and requeued["lost_progress"] is True
    # How long the lost run worked: until its last sign of life (here its log), rounded to a
    # tenth of a second, and 20 steps of 0.05 s had been logged.
    assert requeued["worked_s"] >= 0.9 and requeued["run"] == 1
    assert job.restart_count == 1
    gate.touch()
    assert job.result(timeout=WAIT_S)["resumed_from"] == [0]  # the payload restarted


def test_requeue_waits_for_a_controller_that_is_away(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    job = executor.submit(Gated(), str(gate), 3)
    running(job, 0)
    pid = worker_pid(job)
    subprocess.run(["bash", str(CLUSTER_SH), "controller", "stop"], check=True)
    try:
        # The checkpoint signal, sent to the worker as slurmstepd would (scancel needs the
        # controller): the job checkpoints, and its requeue cannot reach Slurm.
        os.kill(pid, signal.SIGUSR2)
        wait_for(lambda: events(job, "checkpoint"), "the checkpoint", WAIT_S)
        assert job.state == "RUNNING"  # answered from the folder while Slurm is away
        time.sleep(15)
        assert events(job, "requeued") == []  # only once Slurm has accepted it
        assert events(job, "not_requeued") == []
    finally:
        subprocess.run(["bash", str(CLUSTER_SH), "controller", "start"], check=True)
    running(job, 1)
    gate.touch()
    result = job.result(timeout=WAIT_S)
    assert result["runs"] == [0, 1] and result["resumed_from"][1] > 0
    assert len(events(job, "requeued")) == 1 and events(job, "failed") == []
