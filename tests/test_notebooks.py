"""Every notebook in notebooks/ runs top to bottom on the local backend and keeps its promises.

Each notebook is executed with nbclient in a real kernel; a last cell, appended here, prints
the values the notebook promises as JSON so that the test checks them, not the prose.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def check_quickstart(values: dict[str, Any]) -> None:
    result = values["result"]
    assert result["count"] == 60
    assert result["restarts"] == 2
    starts = result["resumed_at"]
    assert starts[0] == 0 and starts[1] > 0 and starts[2] > starts[1]
    assert values["reasons"] == ["preemption", "timeout"]


def check_arrays_and_sequences(values: dict[str, Any]) -> None:
    assert values["squares"] == [x * x for x in range(8)]
    assert len(values["array_ids"]) == 1  # one array, one submission
    computed_in = {int(k): v for k, v in values["computed_in"].items()}
    assert sorted(computed_in) == [0, 1, 2, 3, 4]
    # Steps finished before the preemption were not computed again after the requeue.
    assert computed_in[0] == 0 and computed_in[4] == 1
    assert sorted(computed_in.values()) == list(computed_in.values())


PROMISES: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "01_quickstart.ipynb": (
        "{'result': result, 'reasons': [e['reason'] for e in job.events() "
        "if e['event'] == 'signal']}",
        check_quickstart,
    ),
    "03_job_arrays_and_sequences.ipynb": (
        "{'squares': squares, 'array_ids': array_ids, 'computed_in': computed_in}",
        check_arrays_and_sequences,
    ),
}


def execute(source: Path, workdir: Path, promise: str) -> tuple[nbformat.NotebookNode, Any]:
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell(f"import json as _json\nprint(_json.dumps({promise}))")
    )
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        store_widget_state=True,
        extra_arguments=["--SlurmMagics.cluster=local"],
    )
    client.execute()
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    return notebook, json.loads(printed)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_and_keeps_its_promises(name: str, tmp_path: Path) -> None:
    if name not in PROMISES:
        pytest.fail(f"{name} has no promises checked in tests/test_notebooks.py")
    source = tmp_path / name
    shutil.copy(NOTEBOOKS / name, source)
    promise, check = PROMISES[name]
    notebook, values = execute(source, tmp_path, promise)
    check(values)
    # The jobs went to slurm_jobs/ beside the notebook.
    assert list((tmp_path / "slurm_jobs").glob("*_job.json"))
    # Saved with widget state and text fallbacks: readable without a kernel.
    submissions = [c for c in notebook.cells if c.source.startswith("%%slurm")]
    assert submissions
    for cell in submissions:
        bundles = [
            o.get("data", {}) for o in cell.outputs if o.get("output_type") == "display_data"
        ]
        assert any("text/plain" in b for b in bundles), cell.outputs
    widgets = notebook.metadata.get("widgets", {})
    if any(
        "application/vnd.jupyter.widget-view+json" in b
        for c in submissions
        for b in [o.get("data", {}) for o in c.outputs]
    ):
        assert widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state")
