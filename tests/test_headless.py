"""Headless runs (nbclient, papermill, ``scripts/demo.sh``): the saved notebook shows each job's
final state once ``result()`` returned, and the kernel talks over IPC, not TCP.

Real kernels (the ``venv_kernel_dir`` fixture's interpreter, or this venv's python for the demo
script), real local jobs, nothing mocked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from support import cancel_leftover_jobs, venv_notebook_client

ROOT = Path(__file__).resolve().parents[1]
TCP_WARNING = "without encryption"


def job_notebook(path: Path, seconds: float) -> None:
    """Submit a job that sleeps ``seconds`` with ``%%slurm``; the last cell waits for it."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_slurm_ckpt"),
        nbformat.v4.new_code_cell(
            f"%%slurm --cluster local --name sleeper\nimport time\njob = time.sleep({seconds})"
        ),
        nbformat.v4.new_code_cell("job.result()\njob.state"),
    ]
    nbformat.write(notebook, path)


def saved_job_outputs(notebook: nbformat.NotebookNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """The submission cell's displayed bundle and its widget model's saved state."""
    displays = [o for o in notebook.cells[1].outputs if o["output_type"] == "display_data"]
    assert len(displays) == 1, notebook.cells[1].outputs
    data = displays[0]["data"]
    model_id = data["application/vnd.jupyter.widget-view+json"]["model_id"]
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return data, states[model_id]["state"]


@pytest.mark.kernel
def test_the_saved_output_shows_the_state_result_returned(
    tmp_path: Path, venv_kernel_dir: Path
) -> None:
    path = tmp_path / "headless.ipynb"
    job_notebook(path, 3.0)
    notebook = nbformat.read(path, as_version=4)
    try:
        with venv_notebook_client(
            notebook, venv_kernel_dir, tmp_path, timeout=300, store_widget_state=True
        ) as client:
            client.execute()
    finally:
        cancel_leftover_jobs(tmp_path / "slurm_jobs")

    assert notebook.cells[2].outputs[-1]["data"]["text/plain"] == "'COMPLETED'"
    data, model = saved_job_outputs(notebook)
    assert data["text/plain"].startswith("sleeper · job L1 · local · COMPLETED"), data["text/plain"]
    assert "COMPLETED" in data["text/html"] and "RUNNING" not in data["text/html"]
    assert "result: None" in data["text/plain"]
    assert (model["job_state"], model["job_done"]) == ("COMPLETED", True)


def test_the_demo_script_runs_its_kernel_over_ipc(tmp_path: Path) -> None:
    source = tmp_path / "demo.ipynb"
    job_notebook(source, 1.0)
    out = tmp_path / "out"

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )

    cancel_leftover_jobs(tmp_path / "slurm_jobs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert TCP_WARNING not in done.stdout + done.stderr, done.stderr
    assert "job L1 (sleeper): COMPLETED" in done.stdout
    executed = nbformat.read(out / "demo.executed.ipynb", as_version=4)
    data, model = saved_job_outputs(executed)
    assert " · COMPLETED" in data["text/plain"] and model["job_state"] == "COMPLETED"
    assert not list(tmp_path.glob("kernel-ipc*")), "IPC sockets left in the working folder"
