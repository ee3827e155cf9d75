"""The "Slurm jobs" sidebar over 3,000 jobs, in a real JupyterLab and a real chromium.

3,000 ended jobs written with the package's own writers (``tests/many_jobs.py``) and two local
jobs that really run. The sidebar shows them a page at a time: it pages to older jobs, finds an
old job by its id, narrows the list to one state, then cleans up old completed jobs through its
dialog (first kept, then confirmed): their files are gone from the disk, and the running jobs
are untouched. Screenshots land in ``out/browser/<test name>/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from many_jobs import DAY_S, build_ended_jobs
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.catalog import JobCatalog

pytestmark = pytest.mark.browser

WAIT_MS = 180_000
JOBS = 3_000


def test_sidebar_pages_filters_and_cleans_thousands_of_jobs(
    lab: Any, page: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    folder = lab.root / "project" / "slurm_jobs"
    build_ended_jobs(folder, JOBS, arrays=10, array_size=100, days=30, now=time.time())
    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(name="training")
    running = [executor.submit(time.sleep, 600) for _ in range(2)]
    wait_for(lambda: all(j.state == "RUNNING" for j in running), "two jobs to run", WAIT_MS / 1000)
    entries = JobCatalog().jobs([folder])
    total = JOBS + 2

    page.goto(lab.open_url())
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jp-slurm-jobs"]').click()
    sidebar = page.locator("#jp-slurm-jobs")
    rows = sidebar.locator(".jp-SlurmJobs-row")
    where = sidebar.locator(".jp-SlurmJobs-page")
    expect(where).to_have_text(f"1–50 of {total:,} jobs", timeout=WAIT_MS)
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_attribute("data-job-id", running[-1].job_id)  # newest first
    expect(sidebar.locator(".jp-SlurmJobs-status")).to_contain_text(f"{total:,} jobs")
    page.screenshot(path=str(screenshots / "1-first-page.png"))

    # Older pages: the jobs after the first 50, in order.
    sidebar.get_by_role("button", name="Older ›").click()
    sidebar.get_by_role("button", name="Older ›").click()
    expect(where).to_have_text(f"101–150 of {total:,} jobs", timeout=WAIT_MS)
    expect(rows.first).to_have_attribute("data-job-id", entries[100].key.job_id)
    page.screenshot(path=str(screenshots / "2-third-page.png"))

    # Any job, however old, by its id: the oldest one.
    oldest = entries[-1].key.job_id
    sidebar.locator(".jp-SlurmJobs-textFilter").fill(oldest)
    expect(where).to_have_text(f"1–1 of 1 job of {total:,}", timeout=WAIT_MS)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", oldest)
    sidebar.locator(".jp-SlurmJobs-textFilter").fill("")

    # One state: every TIMEOUT job, counted in the state menu.
    timeouts = sum(entry.final_state == "TIMEOUT" for entry in entries)
    states = sidebar.locator(".jp-SlurmJobs-stateFilter")
    expect(states.locator("option", has_text=f"TIMEOUT ({timeouts:,})")).to_have_count(
        1, timeout=WAIT_MS
    )
    states.select_option("TIMEOUT")
    expect(where).to_have_text(f"1–50 of {timeouts:,} jobs of {total:,}", timeout=WAIT_MS)
    for state in rows.locator(".jp-SlurmJobs-state").all_inner_texts():
        assert state == "TIMEOUT"
    page.screenshot(path=str(screenshots / "3-timeout-only.png"))
    states.select_option("")

    # Clean up the completed jobs older than 7 days: the dialog asks twice; "Keep them" keeps.
    cutoff = time.time() - 7 * DAY_S
    old = {e.key.job_id for e in entries if e.final_state == "COMPLETED" and e.ended_at < cutoff}
    assert 0 < len(old) < JOBS
    dialog = page.locator(".jp-Dialog")
    for confirm in (False, True):
        sidebar.get_by_role("button", name="Clean up…").click()
        for state in ("FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED"):
            dialog.get_by_label(state).uncheck()
        dialog.locator("input[name='days']").fill("7")
        page.screenshot(path=str(screenshots / "4-clean-form.png"))
        dialog.get_by_role("button", name="Next").click()
        expect(dialog).to_contain_text(
            f"Remove the files of {len(old):,} jobs (COMPLETED) that ended more than 7 days ago"
        )
        page.screenshot(path=str(screenshots / "5-clean-question.png"))
        if not confirm:
            dialog.get_by_role("button", name="Keep them").click()
            expect(dialog).to_have_count(0)
            assert len(list(folder.glob("*_job.json"))) == total
            continue
        dialog.get_by_role("button", name=f"Remove {len(old):,} jobs").click()
    expect(sidebar.locator(".jp-SlurmJobs-status")).to_contain_text(
        f"Removed {len(old):,} jobs", timeout=WAIT_MS
    )
    expect(where).to_have_text(f"1–50 of {total - len(old):,} jobs", timeout=WAIT_MS)
    page.screenshot(path=str(screenshots / "6-after-clean.png"))
    left = {path.name[: -len("_job.json")] for path in folder.glob("*_job.json")}
    assert left == {e.key.job_id for e in entries} - old
    assert not [path for job_id in old for path in folder.glob(f"{job_id}_*")]
    for job in running:
        assert job.state == "RUNNING"
