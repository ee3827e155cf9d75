"""``%%slurm`` in a real kernel (nbclient + ipykernel): a notebook's class survives a checkpoint.

The notebook (``tests/notebooks/magic_checkpoint_roundtrip.ipynb``) defines a ``Checkpointable``
class in a cell, submits it with ``%%slurm --cluster local --timeout 1``, interrupts the running
job (``job._interrupt()``), and checks in the kernel that ``job.result()`` is an instance of the
notebook's class with the right count. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Any

import nbformat
import pytest
from support import venv_notebook_client

import jupyter_slurm_ckpt

pytestmark = pytest.mark.kernel

NOTEBOOK = Path(__file__).parent / "notebooks" / "magic_checkpoint_roundtrip.ipynb"


def _text(output: dict[str, Any]) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    return str(output.get("data", {}).get("text/plain", ""))


def test_notebook_class_checkpoints_requeues_and_comes_back(
    venv_kernel_dir: Path, tmp_path: Path
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    folder = tmp_path / "slurm_jobs"
    try:
        # Per cell 300 s: generous for a loaded 2-core machine. Raises CellExecutionError if an
        # assertion of the notebook fails.
        with venv_notebook_client(notebook, venv_kernel_dir, tmp_path, timeout=300) as client:
            client.execute()
    finally:
        for info in folder.glob("*_job.json"):
            with contextlib.suppress(Exception):
                job = jupyter_slurm_ckpt.Job(folder, info.name[: -len("_job.json")])
                if not job.done():
                    job.cancel()

    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    submit, _, check, listing = cells[1:]
    shown = [output.get("data", {}) for output in submit.outputs]
    assert any("text/plain" in data for data in shown), "the %%slurm cell displays the job"
    if importlib.util.find_spec("jupyter_slurm_ckpt.views.widget") is not None:
        assert any("application/vnd.jupyter.widget-view+json" in data for data in shown)
    assert not any(o["output_type"] == "error" for o in submit.outputs)
    printed = "".join(_text(o) for o in check.outputs)
    assert "RESULT L1 40 [0, 1]" in printed
    html = "".join(o.get("data", {}).get("text/html", "") for o in listing.outputs)
    assert "L1" in html and "COMPLETED" in html

    # Another process re-attaches the job and unpickles the notebook's class by value.
    job = jupyter_slurm_ckpt.Job(folder, "L1")
    result = job.result()
    assert type(result).__name__ == "Counter" and result.count == 40
    events = [event["event"] for event in job.events()]
    assert events.count("started") == 2 and "checkpoint" in events and "requeued" in events
    assert len(list((folder / "cells").glob("cell_*.py"))) == 1
