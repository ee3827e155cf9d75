"""The live widget and the sidebar in Notebook 7 (``jupyter notebook``), real chromium.

Opens a notebook in Notebook 7, runs it, checks that the job widget renders and that its
*Simulate preemption* button requeues the job, then opens the "Slurm jobs" sidebar from
View › Left Sidebar, where Notebook 7 keeps its side panels. Screenshots land in
``out/browser/<test name>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pages import WAIT_MS, run_all_cells, screenshot, write_notebook
from test_widget_helpers import submission_cells

pytestmark = pytest.mark.browser


def test_widget_and_sidebar_in_notebook7(notebook7: Any, page: Any, screenshots: Path) -> None:
    from playwright.sync_api import expect

    release = notebook7.root / "release-the-job"
    write_notebook(
        notebook7.root / "widget_demo.ipynb", "A job in Notebook 7", submission_cells(release)
    )
    page.goto(notebook7.open_url("notebooks/widget_demo.ipynb"))
    run_all_cells(page)

    widget = page.locator(".jsc-job-widget")
    expect(widget.locator(".jsc-state")).to_have_text("RUNNING", timeout=WAIT_MS)
    preempt = widget.get_by_role("button", name="Simulate preemption")
    expect(preempt).to_be_enabled(timeout=WAIT_MS)
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "1-running.png"))

    preempt.click()
    timeline = widget.locator(".jsc-timeline")
    expect(timeline).to_contain_text("preemption signal", timeout=WAIT_MS)
    expect(timeline).to_contain_text("requeued", timeout=WAIT_MS)
    expect(timeline).to_contain_text("resumed", timeout=WAIT_MS)
    expect(widget.locator(".jsc-counters")).to_contain_text(
        "requeued 1×: 1 preemption", timeout=WAIT_MS
    )
    screenshot(widget, screenshots / "2-after-preemption.png")

    # Notebook 7 lists its side panels under View › Left Sidebar.
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-item", has_text="Left Sidebar").hover()
    page.locator(".lm-Menu-item", has_text="Show Slurm jobs").click()
    sidebar = page.locator("#jp-slurm-jobs")
    expect(sidebar).to_be_visible(timeout=WAIT_MS)
    row = sidebar.locator(".jp-SlurmJobs-row").filter(
        has=page.locator(".jp-SlurmJobs-name", has_text="waiter")
    )
    expect(row.locator(".jp-SlurmJobs-state")).to_have_text("RUNNING", timeout=WAIT_MS)
    expect(row.locator(".jp-SlurmJobs-requeues")).to_have_text("1 requeue", timeout=WAIT_MS)
    page.screenshot(path=str(screenshots / "3-sidebar.png"))

    release.touch()
    expect(widget.locator(".jsc-state")).to_have_text("COMPLETED", timeout=WAIT_MS)
    expect(widget.locator(".jsc-result")).to_contain_text("{'ticks': ", timeout=WAIT_MS)
    expect(row.locator(".jp-SlurmJobs-state")).to_have_text("COMPLETED", timeout=WAIT_MS)
    screenshot(widget, screenshots / "4-completed.png")
