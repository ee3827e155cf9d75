"""Every notebook in notebooks/ runs top to bottom on the local backend and keeps its promises.

Each notebook is executed with nbclient in a real kernel; a last cell, appended here, prints
the values the notebook promises as JSON so that the test checks them, not the prose.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from support import venv_notebook_client

pytestmark = pytest.mark.kernel

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def check_quickstart(values: dict[str, Any]) -> None:
    result = values["result"]
    assert result["count"] == 60
    assert result["restarts"] == 2
    starts = result["resumed_at"]
    assert starts[0] == 0 and starts[1] > 0 and starts[2] > starts[1]
    assert values["reasons"] == ["preemption", "timeout"]


def check_several_nodes(values: dict[str, Any]) -> None:
    ranks = values["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    # Each rank reached the other at TorchDistributedEnvironment's MASTER_ADDR:MASTER_PORT.
    assert ranks[0]["peer"] == ranks[1]["node"] and ranks[1]["peer"] == ranks[0]["node"]
    for rank in ranks:  # both resumed from rank 0's checkpoint
        assert rank["resumed_at"][0] == 0 and rank["resumed_at"][1] > 0


def check_arrays_and_sequences(values: dict[str, Any]) -> None:
    assert values["squares"] == [x * x for x in range(8)]
    assert len(values["array_ids"]) == 1  # one array, one submission
    computed_in = {int(k): v for k, v in values["computed_in"].items()}
    assert sorted(computed_in) == [0, 1, 2, 3, 4]
    # Steps finished before the preemption were not computed again after the requeue.
    assert computed_in[0] == 0 and computed_in[4] == 1
    assert sorted(computed_in.values()) == list(computed_in.values())


def check_training(values: dict[str, Any]) -> None:
    epochs = values["resumed_epochs"]
    assert len(epochs) == 3 and epochs[0] == 0
    assert all(b > a for a, b in itertools.pairwise(epochs)), epochs
    # Resumed at the right epoch with the right state: bit-for-bit the uninterrupted loss.
    assert values["final_loss"] == values["reference_loss"]
    assert values["reasons"] == ["preemption", "timeout"]


def check_testing_your_checkpoint(values: dict[str, Any]) -> None:
    assert values["time_limits"] >= 1
    assert abs(values["estimate"] - 3.1416) < 0.05
    assert values["exhausted_state"] == "TIMEOUT"
    assert values["budget_warnings"] == []
    assert values["verified"] is True
    assert values["first_divergence"] == 1
    assert values["broken_ok"] is False


def check_pytorch(values: dict[str, Any]) -> None:
    resumed = values["resumed_at"]
    assert len(resumed) == 3 and resumed[0] == 0 and resumed == sorted(set(resumed)), resumed
    assert values["checkpoints"] == 2
    # Bit-identical parameters: after the two interrupts, and under verify_checkpoint's.
    assert values["identical"] is True and values["verified"] is True
    # Two ranks: both got the signal, one checkpoint was written (rank 0's), both resumed
    # from it, and every rank ends with the uninterrupted run's parameters.
    assert values["ddp_ranks"] == [0, 1] and values["signalled"] == [0, 1]
    assert values["rank_checkpoints"] == 1
    for resumed_at in values["ddp_resumed_at"]:
        assert len(resumed_at) == 2 and resumed_at[0] == 0 and resumed_at[1] > 0
    assert values["ddp_identical"] is True


PROMISES: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "01_quickstart.ipynb": (
        "{'result': result, 'reasons': [e['reason'] for e in job.events() "
        "if e['event'] == 'signal']}",
        check_quickstart,
    ),
    "02_checkpointed_training.ipynb": (
        "{'resumed_epochs': resumed_epochs, 'final_loss': final_loss, "
        "'reference_loss': reference_loss, 'reasons': [e['reason'] for e in job.events() "
        "if e['event'] == 'signal']}",
        check_training,
    ),
    "04_testing_your_checkpoint.ipynb": (
        "{'time_limits': time_limits, 'estimate': estimate, 'exhausted_state': exhausted_state, "
        "'budget_warnings': budget_warnings, 'verified': verified, "
        "'first_divergence': first_divergence, 'broken_ok': broken.ok}",
        check_testing_your_checkpoint,
    ),
    "05_several_nodes.ipynb": ("{'ranks': ranks}", check_several_nodes),
    "06_pytorch_checkpoints.ipynb": (
        "{'resumed_at': resumed_at, 'checkpoints': len(checkpoints), 'identical': identical, "
        "'verified': verified, 'ddp_ranks': [r['rank'] for r in ranks], 'signalled': signalled, "
        "'rank_checkpoints': rank_checkpoints, "
        "'ddp_resumed_at': [r['resumed_at'] for r in ranks], 'ddp_identical': ddp_identical}",
        check_pytorch,
    ),
    "03_job_arrays_and_sequences.ipynb": (
        "{'squares': squares, 'array_ids': array_ids, 'computed_in': computed_in}",
        check_arrays_and_sequences,
    ),
}


def execute(
    source: Path, workdir: Path, promise: str, kernel_dir: Path, cluster: str = "local"
) -> tuple[nbformat.NotebookNode, Any]:
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell(f"import json as _json\nprint(_json.dumps({promise}))")
    )
    with venv_notebook_client(
        notebook,
        kernel_dir,
        workdir,
        timeout=300,
        store_widget_state=True,
        extra_arguments=[f"--SlurmMagics.cluster={cluster}"],
    ) as client:
        client.execute()
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    return notebook, json.loads(printed)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_and_keeps_its_promises(
    name: str, tmp_path: Path, venv_kernel_dir: Path
) -> None:
    if name not in PROMISES:
        pytest.fail(f"{name} has no promises checked in tests/test_notebooks.py")
    source = tmp_path / name
    shutil.copy(NOTEBOOKS / name, source)
    promise, check = PROMISES[name]
    notebook, values = execute(source, tmp_path, promise, venv_kernel_dir)
    check(values)
    # The jobs went to slurm_jobs/ beside the notebook.
    assert list((tmp_path / "slurm_jobs").glob("*_job.json"))
    # Saved with widget state and text fallbacks: readable without a kernel.
    submissions = [
        c
        for c in notebook.cells
        if c.source.startswith("%%slurm") and "--dry-run" not in c.source.splitlines()[0]
    ]
    assert submissions
    for cell in submissions:
        bundles = [
            o.get("data", {}) for o in cell.outputs if o.get("output_type") == "display_data"
        ]
        assert any("text/plain" in b for b in bundles), cell.outputs
    widgets = notebook.metadata.get("widgets", {})
    views = [
        b
        for c in submissions
        for b in [o.get("data", {}) for o in c.outputs]
        if "application/vnd.jupyter.widget-view+json" in b
    ]
    assert views, "the submissions displayed no live widget"
    state = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    assert all(v["application/vnd.jupyter.widget-view+json"]["model_id"] in state for v in views)
