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
from pages import WAIT_MS, preempt_with_the_widget, run_all_cells, screenshot, write_notebook
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

    widget = preempt_with_the_widget(page, screenshots)

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
