"""A job is named by its folder and its id together: the same ids in two folders, side by side.

Local ids start at ``L1`` in every folder, so anyone with jobs in two folders has two ``L1``.
Every view (the watcher and its widgets, ``%slurm_jobs``, the server's listing) must show each
job's own state, and no view may wait for a result: a slow job never freezes the others.
Real local jobs, a real kernel (comm messages read as a frontend does), nothing mocked.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import WAIT_S, wait_for
from test_widget_helpers import (  # the fixtures register as executor and watcher
    JOB_SOURCE,
    watcher_fixture,  # noqa: F401
)
from test_widget_jobs import Waiter, fail
from test_widget_kernel import Frontend, frontend_fixture  # noqa: F401  (as frontend)

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.listing import list_jobs
from jupyter_slurm_ckpt.views.status import collect_status
from jupyter_slurm_ckpt.views.watcher import Watcher, poll_states
from jupyter_slurm_ckpt.views.widget import JobWidget


def two_folders_with_l1(root: Path, release: Path) -> tuple[submitit.Job[Any], submitit.Job[Any]]:
    """``L1`` of ``k1`` waits for ``release``; ``L1`` of ``k2`` raises at once."""
    waiting = submitit.LocalExecutor(root / "k1").submit(Waiter(), str(release))
    failing = submitit.LocalExecutor(root / "k2").submit(fail, "boom")
    assert waiting.job_id == failing.job_id == "L1"
    return waiting, failing


def test_states_are_polled_by_folder_and_id(tmp_path: Path) -> None:
    waiting, failing = two_folders_with_l1(tmp_path, tmp_path / "release")
    try:
        failing.wait(WAIT_S)
        wait_for(lambda: waiting.state == "RUNNING", "the waiting job to run")
        states = poll_states([waiting, failing])
        assert states[waiting.key] == "RUNNING" and states[failing.key] == "FAILED"
        assert waiting.key != failing.key
        assert waiting.key == submitit.Job(waiting.paths.folder, "L1").key
    finally:
        waiting.cancel()


def test_widgets_of_the_same_id_in_two_folders_show_their_own_job(
    tmp_path: Path, watcher: Watcher
) -> None:
    waiting, failing = two_folders_with_l1(tmp_path, tmp_path / "release")
    first, second = JobWidget(waiting, watcher=watcher), JobWidget(failing, watcher=watcher)
    try:
        wait_for(lambda: second.job_state == "FAILED", "the failing job's end")
        wait_for(lambda: first.job_state == "RUNNING", "the waiting job to run")
        # The waiting job's view keeps moving: its log tail grows tick by tick.
        ticks = first._log.value.count("tick")
        wait_for(lambda: first._log.value.count("tick") > ticks, "the waiting job's log to grow")
        assert first.job_state == "RUNNING" and not first.job_done
        waiting.cancel()
        wait_for(lambda: first.job_done, "the cancel to show")
        assert first.job_state == "CANCELLED" and "cancelled" in first.failure
        assert second.job_state == "FAILED" and "ValueError: boom" in second.failure
    finally:
        first.close()
        second.close()


def test_a_view_reads_a_result_it_never_waits_for_one(tmp_path: Path) -> None:
    # A state that says the job ended while its result is not there (a scheduler's word that
    # runs ahead of a shared filesystem, or another job's state): the view reads what the
    # folder holds now and says so, it does not wait for the result to come.
    release = tmp_path / "release"
    job = submitit.LocalExecutor(tmp_path / "k1").submit(Waiter(), str(release))
    try:
        wait_for(lambda: job.state == "RUNNING", "the job to run")
        read: list[Any] = []
        reader = threading.Thread(
            target=lambda: read.append(collect_status(job, "COMPLETED")), daemon=True
        )
        reader.start()
        reader.join(10.0)
        assert read, "collect_status waited for the result of a running job"
        assert read[0].result is None and "no result yet" in (read[0].failure or "")
    finally:
        release.touch()
        job.wait(WAIT_S)


def test_slurm_jobs_lists_the_same_id_of_two_subfolders(tmp_path: Path) -> None:
    waiting, failing = two_folders_with_l1(tmp_path, tmp_path / "release")
    try:
        failing.wait(WAIT_S)
        wait_for(lambda: waiting.state == "RUNNING", "the waiting job to run")
        table = list_jobs(tmp_path)  # k1/ and k2/ are its subfolders
        assert sorted(table) == ["k1/L1", "k2/L1"]
        assert table["k1/L1"].paths.folder == waiting.paths.folder
        assert {s.state for s in table.statuses} == {"RUNNING", "FAILED"}
        with pytest.raises(KeyError, match="in 2 folders"):
            table["L1"]
        assert "k1/L1" in repr(table) and "k2/L1" in repr(table)
    finally:
        waiting.cancel()


@pytest.mark.kernel
def test_two_folders_with_the_same_ids_in_one_kernel(frontend: Frontend, tmp_path: Path) -> None:
    release = tmp_path / f"release-{uuid.uuid4().hex}"
    frontend.execute("%load_ext jupyter_slurm_ckpt")
    frontend.execute(
        f"%%slurm --cluster local --folder k1 --name waiting\n{JOB_SOURCE}\n"
        f"job1 = Waiter()({str(release)!r})"
    )
    frontend.execute(
        f"%%slurm --cluster local --folder k2 --name failing\n{JOB_SOURCE}\njob2 = fail('boom')"
    )
    assert not frontend.errors, frontend.errors
    models = frontend.models
    first = frontend.find(_model_name="VBoxModel", job_name="waiting")
    second = frontend.find(_model_name="VBoxModel", job_name="failing")
    assert models[first]["job_id"] == models[second]["job_id"] == "L1"
    assert models[first]["job_folder"].endswith("/k1") and models[second]["job_folder"].endswith(
        "/k2"
    )
    frontend.pump(lambda: models[second]["job_state"] == "FAILED", "job2's end")
    frontend.pump(lambda: models[first]["job_state"] == "RUNNING", "job1 to run")
    # job1's widget keeps updating after job2 ended (its elapsed time moves on).
    seen = models[first]["elapsed"]
    frontend.pump(lambda: models[first]["elapsed"] != seen, "job1's widget to update", 20)
    assert models[first]["job_state"] == "RUNNING" and not models[first]["job_done"]

    frontend.execute("job1.cancel()")
    frontend.pump(lambda: models[first]["job_done"], "job1's cancel to show")
    assert models[first]["job_state"] == "CANCELLED", models[first]["job_state"]
    assert models[second]["job_state"] == "FAILED" and "boom" in models[second]["failure"]
