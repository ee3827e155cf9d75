"""Several nodes and GPUs, as on a real cluster (``cluster.sh start --nodes 2``: two emulated
nodes, n1 and n2, each with two fake GPUs).

A 2-node job: each rank runs on its node, the ranks meet over TCP at the address
``helpers.TorchDistributedEnvironment`` gives (no torch needed), and both resume from the
checkpoint after ``_interrupt()`` and after a real preemption.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import slurm_fields
from core.jobs_for_tests import node_layout  # noqa: F401  (shipped by value)
from core.test_local_nodes import EXPECTED, run_layout, without_gpus
from slurm_jobs_for_tests import Gated, NodeReport, gpu_view
from support import wait_for
from test_notebooks import NOTEBOOKS, PROMISES, check_several_nodes, execute

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.status import collect_status
from jupyter_slurm_ckpt.views.text import state_text

pytestmark = pytest.mark.slurm

WAIT_S = 120.0


@pytest.fixture
def two_nodes(slurm_cluster: Any) -> tuple[str, ...]:
    if len(slurm_cluster.nodes) < 2:
        pytest.fail(
            f"this test needs 2 nodes, the cluster has {list(slurm_cluster.nodes)}: start it "
            'with `eval "$(bash tests/slurm/cluster.sh start --nodes 2)"`'
        )
    return tuple(slurm_cluster.nodes)


def all_started(job: submitit.Job[Any], run: int) -> bool:
    """Whether both ranks of run ``run`` have started (each records its start) and met (each
    prints ``ready <run>``: an interrupt from then on lands while they count)."""
    tasks = {e.get("task", 0) for e in job.events() if e["event"] == "started" and e["run"] == run}
    met = all(f"ready {run}" in (job.stdout(task) or "") for task in (0, 1))
    return tasks == {0, 1} and met and job.state == "RUNNING"


def test_a_two_node_job_resumes_on_both_nodes_after_interrupt_and_preemption(
    executor: submitit.AutoExecutor, gate: Path, two_nodes: tuple[str, ...], slurm_cluster: Any
) -> None:
    executor.update_parameters(nodes=2, tasks_per_node=1)
    job = executor.submit(NodeReport(), str(gate), 3)
    wait_for(lambda: all_started(job, 0), "both ranks of run 0", WAIT_S)
    job._interrupt()
    wait_for(lambda: all_started(job, 1), "both ranks of run 1", WAIT_S)
    # A real preemption: a high-priority job that wants both nodes whole.
    high = subprocess.run(
        ["sbatch", "--parsable", "--exclusive", "--partition=high", "--nodes=2",
         "--output=/dev/null", "--job-name=preemptor", "--wrap", "sleep 1"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    try:
        wait_for(lambda: all_started(job, 2), "both ranks of run 2", WAIT_S)
    finally:
        subprocess.run(["scancel", high], check=False)
    gate.touch()
    ranks = job.results(timeout=WAIT_S)
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert [r["node_id"] for r in ranks] == [0, 1]
    assert {r["node"] for r in ranks} == set(two_nodes[:2])  # one rank on each node
    assert ranks[0]["peer"] == ranks[1]["node"] and ranks[1]["peer"] == ranks[0]["node"]
    assert ranks[0]["master"] == ranks[1]["master"]
    for rank in ranks:  # both resumed from the checkpoint, twice
        assert rank["runs"] == [0, 1, 2]
        assert 0 < rank["resumed_from"][1] < rank["resumed_from"][2]
    signalled = [(e["task"], e["reason"]) for e in job.events() if e["event"] == "signal"]
    # Task 0 tells why for the job; task 1 records the warnings with task 0's reason. A stock
    # preemption's only notice is a SIGTERM, which task 1 simply leaves on.
    warned = 2 if slurm_cluster.preemption == "signal" else 1
    assert sorted(signalled) == [(0, "preemption")] * 2 + [(1, "preemption")] * warned
    assert job.restart_count == 2


def test_gpus_are_scheduled_and_visible_to_the_job(executor: submitit.AutoExecutor) -> None:
    executor.update_parameters(gpus_per_node=1)
    job = executor.submit(gpu_view)
    # Slurm 22.05 writes gres:gpu:1, 24.11 gres/gpu:1.
    assert slurm_fields(job.job_id)["TresPerNode"] in ("gres:gpu:1", "gres/gpu:1")
    assert job.result(timeout=WAIT_S) == {"CUDA_VISIBLE_DEVICES": "0", "SLURM_GPUS_ON_NODE": "1"}


def test_busy_and_impossible_gpu_requests_show_slurms_reason(
    executor: submitit.AutoExecutor, gate: Path, two_nodes: tuple[str, ...]
) -> None:
    # More GPUs than any node has: Slurm keeps the job PENDING (BadConstraints) for ever; the
    # widget says so, in words that say what to do.
    executor.update_parameters(gpus_per_node=8)
    impossible = executor.submit(gpu_view)
    wait_for(lambda: impossible.pending_reason == "BadConstraints", "Slurm's reason", WAIT_S)
    status = collect_status(impossible)
    assert status.state == "PENDING" and "no node can ever run this job" in state_text(status)
    impossible.cancel()
    # Every GPU of the node taken: the next job waits, and the widget says why.
    node = two_nodes[0]
    executor.update_parameters(gpus_per_node=2, slurm_nodelist=node)
    holder = executor.submit(Gated(), str(gate))
    wait_for(lambda: holder.state == "RUNNING", "the job holding the GPUs", WAIT_S)
    waiting = executor.submit(gpu_view)
    wait_for(lambda: waiting.pending_reason == "Resources", "Slurm's reason", WAIT_S)
    status = collect_status(waiting)
    assert status.state == "PENDING" and status.pending_reason == "Resources"
    gate.touch()
    assert waiting.result(timeout=WAIT_S)["SLURM_GPUS_ON_NODE"] == "2"


def test_local_emulated_nodes_look_like_slurm_nodes_field_by_field(
    executor: submitit.AutoExecutor, folder: Path, two_nodes: tuple[str, ...]
) -> None:
    # One probe, one request (2 nodes x 2 tasks, 2 GPUs per node), both backends.
    on_slurm = run_layout(executor)
    local = submitit.AutoExecutor(folder / "local", cluster="local")
    local.update_parameters(local_visible_gpus=(0, 1, 2, 3))
    emulated = run_layout(local)
    assert without_gpus(emulated) == without_gpus(on_slurm) == EXPECTED
    for slurm_task, local_task in zip(on_slurm, emulated, strict=True):
        # As many GPUs per task, and the task's own one at the same place among them; a
        # cluster's nodes each number theirs from 0, the emulated ones share this machine's.
        assert len(slurm_task["visible_gpus"]) == len(local_task["visible_gpus"]) == 2
        for task in (slurm_task, local_task):
            assert task["visible_gpus"].index(task["own_gpu"]) == task["local_rank"]
    assert {task["visible_gpus"][0] for task in on_slurm} == {"0"}  # n1: 0,1; n2: 0,1
    assert [task["own_gpu"] for task in emulated] == ["0", "1", "2", "3"]


def test_a_request_the_partition_cannot_give_now_waits_pending_and_says_why(
    executor: submitit.AutoExecutor,
) -> None:
    # More CPUs and memory than a node has, and a GPU: sbatch takes it, and Slurm keeps it
    # PENDING (PartitionConfig), as after a plain sbatch (its release exits 1 all the same).
    executor.update_parameters(cpus_per_task=10, mem_gb=40, gpus_per_node=1)
    job = executor.submit(gpu_view)
    wait_for(lambda: job.pending_reason == "PartitionConfig", "Slurm's reason", WAIT_S)
    status = collect_status(job)
    assert status.state == "PENDING"
    assert "cancel it and ask for less" in state_text(status)
    assert slurm_fields(job.job_id)["Priority"] != "0"  # released: it waits, not held
    job.cancel()
    assert job.state == "CANCELLED"


def test_a_request_slurm_refuses_fails_at_submit_with_slurms_words(
    executor: submitit.AutoExecutor, folder: Path
) -> None:
    executor.update_parameters(slurm_partition="no_such_partition")
    with pytest.raises(submitit.FailedSubmissionError, match="Invalid partition name specified"):
        executor.submit(gpu_view)
    assert not list(folder.glob("*_job.json"))  # nothing half-submitted


def test_the_several_nodes_notebook_runs_on_two_slurm_nodes(
    tmp_path: Path, two_nodes: tuple[str, ...], venv_kernel_dir: Path
) -> None:
    source = tmp_path / "05_several_nodes.ipynb"
    shutil.copy(NOTEBOOKS / source.name, source)
    _, values = execute(source, tmp_path, "{'ranks': ranks}", venv_kernel_dir, cluster="slurm")
    check_several_nodes(values)
    assert {rank["node"] for rank in values["ranks"]} == set(two_nodes[:2])


def test_the_pytorch_notebook_trains_two_ddp_ranks_on_two_slurm_nodes(
    tmp_path: Path, two_nodes: tuple[str, ...], venv_kernel_dir: Path
) -> None:
    # Its jobs on Slurm: interrupted, resumed bit for bit, verified; two gloo ranks, one per
    # node, of which only rank 0 checkpoints.
    source = tmp_path / "06_pytorch_checkpoints.ipynb"
    shutil.copy(NOTEBOOKS / source.name, source)
    promise, check = PROMISES[source.name]
    _, values = execute(source, tmp_path, promise, venv_kernel_dir, cluster="slurm")
    check(values)
