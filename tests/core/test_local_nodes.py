"""Emulated nodes on the local backend look like nodes: a job of 2 nodes x 2 tasks with 4
visible GPUs gives each task the node, rank on the node, number of nodes, host list, torch
variables and GPUs that the same request gets from Slurm (compared field by field on the real
cluster: tests/slurm/test_slurm_nodes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import jupyter_slurm_ckpt as submitit

from .jobs_for_tests import node_layout

#: 2 nodes x 2 tasks, 2 GPUs per node: what each task reads, as Slurm's block distribution
#: places the tasks (0 and 1 on the first node, 2 and 3 on the second).
EXPECTED = [
    {
        "global_rank": rank,
        "local_rank": rank % 2,
        "node": rank // 2,
        "num_nodes": 2,
        "num_tasks": 4,
        "hostnames": 2,
        "master_is_first_host": True,
        "torch": {
            "RANK": str(rank),
            "WORLD_SIZE": "4",
            "LOCAL_RANK": str(rank % 2),
            "LOCAL_WORLD_SIZE": "2",
        },
    }
    for rank in range(4)
]


def run_layout(executor: submitit.AutoExecutor) -> list[dict[str, Any]]:
    """The probe's answer of each task of a 2 x 2 job with 2 GPUs per node."""
    executor.update_parameters(nodes=2, tasks_per_node=2, gpus_per_node=2, timeout_min=5)
    return executor.submit(node_layout).results(timeout=180)


def without_gpus(layout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layout without the GPU ids (a cluster's nodes each number their own from 0)."""
    gpu_fields = ("visible_gpus", "own_gpu")
    return [{k: v for k, v in task.items() if k not in gpu_fields} for task in layout]


def test_emulated_nodes_have_their_own_ranks_and_gpus(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path / "jobs", cluster="local")
    executor.update_parameters(local_visible_gpus=(0, 1, 2, 3))
    layout = run_layout(executor)
    assert without_gpus(layout) == EXPECTED
    # Each node has GPUs of its own; each task's own GPU (export()) is its rank on the node's.
    visible = [task["visible_gpus"] for task in layout]
    assert visible == [["0", "1"], ["0", "1"], ["2", "3"], ["2", "3"]]
    assert [task["own_gpu"] for task in layout] == ["0", "1", "2", "3"]


def test_emulated_nodes_need_gpus_for_every_node(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path / "jobs", cluster="local")
    with pytest.raises(ValueError, match=r"nodes=2 \* gpus_per_node=2 GPUs \(each node has its"):
        executor.update_parameters(nodes=2, gpus_per_node=2, local_visible_gpus=(0, 1, 2))
