"""Slurm as production clusters run it (``cluster.sh start --cgroup``): processes tracked in
cgroups, CPUs bound and memory limited; and Slurm 24.05+'s requeue of a job that ends during a
preemption's grace time.

CI runs these on every cluster of scripts/test.sh. The lab cluster (``proctrack/linuxproc``,
nothing bound or limited) hides what the cgroup ones show: Slurm's SIGTERM reaches every process
there, each task sees every CPU and no memory limit applies.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import slurm_fields
from slurm_jobs_for_tests import BigState, Gated, cpu_view
from support import wait_for
from test_slurm_nodes import two_nodes  # noqa: F401 (a fixture)
from test_slurm_termination import events, preempt, preempted_once, running

import jupyter_slurm_ckpt as submitit

pytestmark = pytest.mark.slurm

WAIT_S = 120.0


def teardown_log(executor: submitit.AutoExecutor, folder: Path) -> Path:
    """Give the executor's jobs a teardown line that appends to the file returned."""
    runs = folder / "teardown-runs"
    executor.update_parameters(slurm_teardown=[f"echo run >> {shlex.quote(str(runs))}"])
    return runs


def slurm_state(job: submitit.Job[Any]) -> str:
    done = subprocess.run(["squeue", "-h", "-t", "all", "-j", job.job_id, "-o", "%T"],
                          capture_output=True, text=True)
    return done.stdout.strip()


def test_scancel_of_a_job_with_teardown_runs_the_teardown_and_says_cancelled(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path
) -> None:
    # With teardown lines the worker runs in the background of the batch shell. Under
    # proctrack/cgroup Slurm's SIGTERM reaches the shell alone, which passes it on. Before the
    # fix the worker never heard it, and the SIGKILL KillWait later took the shell (and its
    # teardown) with it.
    torn_down = teardown_log(executor, tmp_path)
    job = executor.submit(Gated(), str(gate))
    running(job, 0)
    subprocess.run(["scancel", job.job_id], check=True)
    wait_for(lambda: torn_down.exists(), "the teardown", WAIT_S)
    job.wait(timeout=WAIT_S)
    assert job.state == "CANCELLED"
    (cancelled,) = events(job, "cancelled")
    assert "reason" not in cancelled  # recorded by the worker (a view adds Slurm's reason)
    assert events(job, "checkpoint") == [] and events(job, "requeued") == []
    assert torn_down.read_text() == "run\n"


def test_a_job_with_teardown_resumes_from_its_checkpoint_after_a_real_preemption(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path
) -> None:
    # On a stock cluster under proctrack/cgroup the only notice of a preemption is a SIGTERM
    # to the batch shell: before the fix the job restarted from scratch (runs [0, 1], resumed
    # from 0), the teardown of its first run never ran.
    executor.update_parameters(slurm_exclusive=True)
    torn_down = teardown_log(executor, tmp_path)
    job = preempted_once(executor, gate)
    assert [e["reason"] for e in events(job, "signal")] == ["preemption"]
    assert [e["requeue"] for e in events(job, "checkpoint")] == [True]
    wait_for(lambda: torn_down.exists() and torn_down.read_text() == "run\nrun\n",
             "the teardown of each run", WAIT_S)


def test_each_task_of_a_two_node_job_has_the_cpus_it_asked_for(
    executor: submitit.AutoExecutor, two_nodes: tuple[str, ...], slurm_cluster: Any  # noqa: F811
) -> None:
    executor.update_parameters(nodes=2, tasks_per_node=1, cpus_per_task=2)
    views = executor.submit(cpu_view).results(timeout=WAIT_S)
    assert [view["rank"] for view in views] == [0, 1]
    assert {view["node"] for view in views} == set(two_nodes[:2])
    for view in views:  # bound to its 2 CPUs under task/affinity; the lab binds nothing
        assert len(view["cpus"]) == 2 if slurm_cluster.cgroup else len(view["cpus"]) >= 2


@pytest.mark.several_cpus
def test_two_tasks_on_one_node_each_get_their_own_cpus(
    executor: submitit.AutoExecutor, slurm_cluster: Any
) -> None:
    # srun of Slurm 22.05 and 23.02 does not read the cpus-per-task sbatch exported: without
    # srun --cpus-per-task each task asked for one CPU, and the two were bound to the same ones.
    node_cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True,
                                   text=True, check=True).stdout.split()[0])
    if node_cpus < 4 or not slurm_cluster.cgroup:
        pytest.fail("this test needs nodes of 4 CPUs that bind them: start the cluster with "
                    '`eval "$(bash tests/slurm/cluster.sh start --cgroup --cpus 4)"`')
    executor.update_parameters(nodes=1, tasks_per_node=2, cpus_per_task=2)
    first, second = (set(view["cpus"]) for view in executor.submit(cpu_view).results(WAIT_S))
    assert not first & second  # each task its own CPUs...
    machine = os.cpu_count() or 1  # ...together the job's 4, as far as the machine has them
    assert len(first | second) == min(4, machine)


def test_a_job_near_its_memory_limit_is_preempted_checkpoints_and_resumes(
    executor: submitit.AutoExecutor, gate: Path, slurm_cluster: Any
) -> None:
    # 600 MB of state under a 1 GB limit (enforced on the cgroup clusters): the checkpoint is
    # written without a second copy in memory, and the next run resumes from it.
    executor.update_parameters(slurm_exclusive=True, mem_gb=1)
    job = executor.submit(BigState(600), str(gate), 3, "ready")
    wait_for(lambda: "ready" in (job.stdout() or ""), "the state to be made", WAIT_S)
    result = preempted_once(executor, gate, job).result()
    assert result["made_in_run"] == 0 and result["state_mb"] == 600  # from the checkpoint
    (checkpoint,) = events(job, "checkpoint")
    assert checkpoint["requeue"] is True and checkpoint["bytes"] > 600 * 2**20
    assert result["limit"] == (2**30 if slurm_cluster.cgroup else None)


def test_a_job_that_completes_in_its_preemption_grace_time_is_not_run_again(
    executor: submitit.AutoExecutor, gate: Path, slurm_cluster: Any
) -> None:
    # Slurm 24.05+ requeues a batch job that ends during a preemption's grace time
    # (GRACE_PREEMPT): before the fix it ran the completed callable again (from its last
    # payload) and overwrote the result. Slurm 22.05 does not: the test passes there either way.
    if slurm_cluster.preemption != "stock":
        pytest.skip("with preempt_send_user_signal the preempted job is warned at once and "
                    "requeues itself: it cannot complete during the grace time")
    executor.update_parameters(slurm_exclusive=True)
    job = executor.submit(Gated(), str(gate), 3)
    running(job, 0)
    high = preempt(job)
    try:
        wait_for(lambda: slurm_fields(job.job_id)["PreemptTime"] != "None",
                 "the preemption's grace time to begin", WAIT_S)
        gate.touch()  # no notice comes before the grace time ends: the job completes in it
        result = job.result(timeout=WAIT_S)
        written = job.paths.result_pickle.stat().st_mtime_ns
        wait_for(lambda: slurm_state(job) == "COMPLETED", "Slurm to be done with it", WAIT_S)
    finally:
        subprocess.run(["scancel", high], check=False)
    assert [e["run"] for e in events(job, "started")] == [0]  # called once, never again
    assert job.result() == result and job.paths.result_pickle.stat().st_mtime_ns == written
    assert events(job, "requeued") == [] and job.state == "COMPLETED"
    if slurm_cluster.version >= (24, 5):  # Slurm did start it again: that run ended at once
        assert "not run again: the job has ended" in (job.stderr() or "")
