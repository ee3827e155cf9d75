"""Actions Slurm refuses, and views that only read, on the real cluster.

A ``scancel`` that fails cannot be provoked on demand (the controller would have to be down
for exactly that call), so those tests put a failing ``scancel`` first on PATH, the one fake
here; the job, its worker, the second (real) scancel and the signals are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from slurm_jobs_for_tests import Gated
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.slurm.commands import SchedulerError
from jupyter_slurm_ckpt.server.config import SlurmJobsConfig
from jupyter_slurm_ckpt.server.jobs import JobService
from jupyter_slurm_ckpt.server.listing import PageQuery
from jupyter_slurm_ckpt.views.watcher import Watcher
from jupyter_slurm_ckpt.views.widget import JobWidget

pytestmark = pytest.mark.slurm

WAIT_S = 120.0
DOWN = "scancel: error: Unable to contact slurm controller (connect failure)"


@pytest.fixture
def failing_scancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Turns a failing ``scancel`` on (first on PATH) until ``failing_scancel.undo()``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "scancel"
    script.write_text(f"#!/bin/sh\necho '{DOWN}' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")
    return monkeypatch


def _running(executor: submitit.AutoExecutor, gate: Path) -> submitit.Job[Any]:
    job = executor.submit(Gated(), str(gate))
    wait_for(lambda: job.summary().runs == 1 and job.state == "RUNNING", "the job to run", WAIT_S)
    return job


def test_a_failed_cancel_records_nothing_and_says_why(
    executor: submitit.AutoExecutor, gate: Path, failing_scancel: pytest.MonkeyPatch
) -> None:
    job = _running(executor, gate)
    with pytest.raises(SchedulerError, match="Unable to contact slurm controller"):
        job.cancel()
    # Before the fix the folder said CANCELLED for good while the job ran on.
    assert "cancelled" not in [e["event"] for e in job.events()]
    assert job.state == "RUNNING"
    failing_scancel.undo()
    job.cancel()
    assert job.state == "CANCELLED" and job.summary().terminal["by"] == "user"


def test_the_widgets_cancel_shows_the_failure(
    executor: submitit.AutoExecutor, gate: Path, failing_scancel: pytest.MonkeyPatch
) -> None:
    job = _running(executor, gate)
    watcher = Watcher(min_interval_s=0.05, max_interval_s=0.2)
    widget = JobWidget(job, watcher=watcher)
    try:
        actions = widget.actions
        wait_for(lambda: not actions.cancel_button.disabled, "the cancel button", WAIT_S)
        actions.cancel_button.click()
        wait_for(lambda: actions.error, "the cancel's error", WAIT_S)
        ticks = watcher.ticks
        wait_for(
            lambda: watcher.ticks > ticks + 1 or widget.job_done,
            "the view to read the job again", WAIT_S,
        )  # fmt: skip
        assert actions.error.startswith("Cancel failed: SchedulerError: scancel ")
        assert DOWN in actions.error and DOWN in widget.actions._note.value
        assert widget.job_state == "RUNNING" and not actions.cancel_button.disabled
    finally:
        widget.close()
        failing_scancel.undo()
        job.cancel()


def test_a_failed_interrupt_leaves_no_reason_for_the_next_signal(
    executor: submitit.AutoExecutor, gate: Path, failing_scancel: pytest.MonkeyPatch
) -> None:
    job = _running(executor, gate)
    with pytest.raises(SchedulerError, match="Unable to contact slurm controller"):
        job._interrupt(timeout=True)
    # Before the fix its "timeout" stayed in <id>_signal.json for the next signal to read.
    assert not job.paths.signal_request.exists()
    failing_scancel.undo()
    # The next signal comes from Slurm itself (as at a preemption), with no request behind it:
    # the worker asks Slurm why, and its time limit is far away.
    subprocess.run(["scancel", "--signal=USR2", "--full", job.job_id], check=True)
    wait_for(lambda: job.summary().requeues == 1, "the requeue", WAIT_S)
    assert [e["reason"] for e in job.events() if e["event"] == "signal"] == ["preemption"]
    gate.touch()
    assert job.result(timeout=WAIT_S)["runs"] == [0, 1]


def test_the_servers_listing_records_no_end(executor: submitit.AutoExecutor, gate: Path) -> None:
    job = _running(executor, gate)
    # Killed without a word (SIGKILL: the job cannot record its end), then only Slurm knows.
    pid = next(e["pid"] for e in job.events() if e["event"] == "started")
    os.kill(pid, signal.SIGKILL)
    folder = job.paths.folder
    service = JobService(SlurmJobsConfig(), [folder], folder)
    before = job.paths.events.read_bytes()

    def listed_state() -> str:
        service.invalidate()  # a refresh each time, as once the listing's cache period ends
        rows = service.lister.page((folder,), PageQuery())["jobs"]  # what a GET runs
        return str(next(r["state"] for r in rows if r["id"] == job.job_id))

    wait_for(lambda: listed_state() == "FAILED", "the listing to show the end", WAIT_S)
    # Before the fix the listing appended the end ("failed: Slurm reports...") inside the
    # Jupyter server.
    assert job.paths.events.read_bytes() == before
    # The user's own process records it.
    attached = submitit.Job(folder, job.job_id)
    assert attached.state == "FAILED" and attached.summary().terminal["event"] == "failed"
