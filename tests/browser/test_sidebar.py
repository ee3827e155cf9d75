"""The "Slurm jobs" sidebar in a real JupyterLab and a real chromium, over real local jobs.

Opens the sidebar, finds a running local job, clicks *Simulate preemption* and waits for the
row's requeue count to go up (the job really checkpointed and requeued: the core confirms it);
checks that polling pauses while the sidebar is hidden, and that *Show log* opens the log tail.
Screenshots land in ``out/browser/<test name>/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit

pytestmark = pytest.mark.browser

WAIT_MS = 180_000


def sleeper(seconds: float) -> submitit.helpers.FunctionSequence:
    """A checkpointable callable from the library: requeues where it stands."""
    sequence = submitit.helpers.FunctionSequence()
    sequence.add(time.sleep, seconds)
    return sequence


def is_list(url: str) -> bool:
    """Whether ``url`` is the sidebar's job-list request."""
    return url.split("?")[0].endswith("/jupyter-slurm-ckpt/jobs")


def test_sidebar_simulates_a_preemption(lab: Any, page: Any, screenshots: Path) -> None:
    from playwright.sync_api import expect

    executor = submitit.LocalExecutor(lab.root / "project" / "slurm_jobs")
    executor.update_parameters(name="hello")
    done = executor.submit(print, "hello from a finished job")
    done.wait(WAIT_MS / 1000)
    executor.update_parameters(name="training")
    job = executor.submit(sleeper(600))
    wait_for(lambda: job.state == "RUNNING", f"job {job.job_id} to run", WAIT_MS / 1000)
    list_requests: list[str] = []
    page.on("request", lambda request: list_requests.append(request.url))
    page.goto(lab.open_url())
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jp-slurm-jobs"]')
    tab.click()
    sidebar = page.locator("#jp-slurm-jobs")
    expect(sidebar).to_be_visible()
    row = sidebar.locator(f'.jp-SlurmJobs-row[data-job-id="{job.job_id}"]')
    expect(row.locator(".jp-SlurmJobs-state")).to_have_text("RUNNING")
    expect(row.locator(".jp-SlurmJobs-name")).to_have_text("training")
    expect(row.locator(".jp-SlurmJobs-backend")).to_have_text("local")
    expect(row.locator(".jp-SlurmJobs-requeues")).to_have_text("0 requeues")
    rows = sidebar.locator(".jp-SlurmJobs-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-job-id", job.job_id)  # newest first
    page.screenshot(path=str(screenshots / "1-running.png"))

    row.get_by_role("button", name="Simulate preemption").click()

    expect(row).to_have_attribute("data-requeues", "1", timeout=WAIT_MS)
    expect(row.locator(".jp-SlurmJobs-requeues")).to_have_text("1 requeue")
    expect(row.locator(".jp-SlurmJobs-state")).to_have_text("RUNNING", timeout=WAIT_MS)
    expect(row.locator(".jp-SlurmJobs-last")).to_have_text(
        "started run 1 on " + str(job.summary().node), timeout=WAIT_MS
    )
    page.screenshot(path=str(screenshots / "2-after-preemption.png"))
    summary = job.summary()
    assert (summary.preemptions, summary.requeues, summary.timeouts) == (1, 1, 0)

    # Hidden, the sidebar stops polling (1 s interval in the test settings); shown, it resumes.
    # (page.wait_for_timeout, not time.sleep: Playwright records requests only while it runs.)
    tab.click()
    expect(sidebar).to_be_hidden()
    page.wait_for_timeout(1500)  # a request in flight when hiding may still land
    before = [url for url in list_requests if is_list(url)]
    page.wait_for_timeout(4000)
    assert [url for url in list_requests if is_list(url)] == before, "hidden, it kept polling"
    with page.expect_request(lambda request: is_list(request.url), timeout=30_000):
        tab.click()

    # "Show log" opens the job's log tail in the main area.
    finished = sidebar.locator(f'.jp-SlurmJobs-row[data-job-id="{done.job_id}"]')
    expect(finished.locator(".jp-SlurmJobs-state")).to_have_text("COMPLETED")
    expect(finished.get_by_role("button", name="Simulate preemption")).to_be_disabled()
    finished.get_by_role("button", name="Show log").click()
    expect(page.locator(".jp-SlurmJobs-log pre")).to_contain_text("hello from a finished job")
    page.screenshot(path=str(screenshots / "3-log.png"))
