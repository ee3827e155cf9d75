"""Progress bars and terminal-like logs in a real JupyterLab and chromium (Playwright).

Two jobs run from one notebook: a tqdm loop (paused at 120 of 200 steps, with a coloured line
on stdout) and a job reporting ``step``/``total`` (paused at 50 of 200). The tqdm job's widget
shows one bar line in its log tail and the bar parsed from it; the reporting job is preempted
with the widget's button and its bar resumes from the checkpointed step, in the widget and in
the sidebar. Screenshots land in ``out/browser/<test name>/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pages import WAIT_MS, color_of, run_all_cells, screenshot, write_notebook
from test_widget_helpers import progress_cells

pytestmark = pytest.mark.browser

GREEN = "rgb(0, 162, 80)"  # "\x1b[1;32m" in JupyterLab's palette


def test_progress_bars_and_colour_logs_in_jupyterlab(
    lab: Any, page: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    release = lab.root / "release-the-jobs"
    write_notebook(lab.root / "progress.ipynb", "Progress bars", progress_cells(release))
    page.goto(lab.open_url("lab/tree/progress.ipynb"))
    run_all_cells(page)
    widgets = page.locator(".jsc-job-widget")
    expect(widgets).to_have_count(2, timeout=WAIT_MS)
    looping, stepping = widgets.nth(0), widgets.nth(1)

    # The tqdm loop: its bar, read from the log; the log tail as a terminal shows it.
    expect(looping.locator(".jsc-progress")).to_contain_text(
        "train 120/200 (60%)", timeout=WAIT_MS
    )
    expect(looping.locator(".progress-bar")).to_have_attribute(
        "style", re.compile(r"width: 60%"), timeout=WAIT_MS
    )
    started = looping.locator(".jsc-log span", has_text="training started")
    expect(started).to_be_visible(timeout=WAIT_MS)
    assert color_of(started) == GREEN
    looping.get_by_role("button", name="stderr").click()
    expect(looping.locator(".jsc-log")).to_contain_text("120/200", timeout=WAIT_MS)
    log = looping.locator(".jsc-log").inner_text()
    assert [line for line in log.splitlines() if line.startswith("train:")] == [
        log.strip().splitlines()[-1]
    ], log  # one line: the latest redraw, not 120 of them
    looping.scroll_into_view_if_needed()
    screenshot(looping, screenshots / "1-tqdm-mid-run.png")

    # The reporting job, preempted at step 50: its next run resumes there.
    expect(stepping.locator(".jsc-progress")).to_contain_text("50/200 (25%)", timeout=WAIT_MS)
    preempt = stepping.get_by_role("button", name="Simulate preemption")
    expect(preempt).to_be_enabled(timeout=WAIT_MS)
    preempt.click()
    expect(stepping.locator(".jsc-progress")).to_contain_text(
        "resumed at 50 in run #1", timeout=WAIT_MS
    )
    expect(stepping.locator(".progress-bar")).to_have_attribute(
        "style", re.compile(r"width: 25%")
    )
    timeline = stepping.locator(".jsc-timeline")
    expect(timeline).to_contain_text("preemption signal")
    expect(timeline).to_contain_text("at step 50 of 200")
    expect(timeline).to_contain_text("run #1 resumed at step 50 of 200")
    expect(stepping).to_contain_text(re.compile(r"elapsed [\d.]+ s \(run #1: [\d.]+ s\)"))
    stepping.scroll_into_view_if_needed()
    screenshot(stepping, screenshots / "2-resumed-at-the-checkpointed-step.png")

    # The sidebar shows the same bars.
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jp-slurm-jobs"]').click()
    sidebar = page.locator("#jp-slurm-jobs")
    rows = sidebar.locator(".jp-SlurmJobs-row")
    stepper_row = rows.filter(has=page.locator(".jp-SlurmJobs-name", has_text="stepper"))
    tqdm_row = rows.filter(has=page.locator(".jp-SlurmJobs-name", has_text="tqdm-loop"))
    expect(stepper_row.locator(".jp-SlurmJobs-progresstext")).to_contain_text(
        "50/200 (25%)", timeout=WAIT_MS
    )
    expect(stepper_row.locator(".jp-SlurmJobs-progresstext")).to_contain_text(
        "resumed at 50 in run #1"
    )
    expect(stepper_row.locator(".jp-SlurmJobs-bar")).to_have_attribute("data-fraction", "0.25")
    expect(stepper_row.locator(".jp-SlurmJobs-fill")).to_have_attribute(
        "style", re.compile(r"width: 25(\.0)?%")
    )
    expect(stepper_row.locator(".jp-SlurmJobs-elapsed")).to_contain_text("(run #1: ")
    expect(tqdm_row.locator(".jp-SlurmJobs-progresstext")).to_contain_text(
        "train 120/200 (60%)"
    )
    page.screenshot(path=str(screenshots / "3-sidebar.png"))

    # Its log view renders the colours too.
    tqdm_row.get_by_role("button", name="Show log").click()
    coloured = page.locator(".jp-SlurmJobs-log pre span", has_text="training started")
    expect(coloured).to_be_visible(timeout=WAIT_MS)
    assert color_of(coloured) == GREEN
    page.screenshot(path=str(screenshots / "4-sidebar-log.png"))

    page.locator(".lm-TabBar-tab", has_text="Log tqdm-loop").locator(
        ".lm-TabBar-tabCloseIcon"
    ).click()
    release.touch()
    for widget in (looping, stepping):
        expect(widget.locator(".jsc-state")).to_have_text("COMPLETED", timeout=WAIT_MS)
        expect(widget.locator(".progress-bar")).to_have_attribute(
            "style", re.compile(r"width: 100%"), timeout=WAIT_MS
        )
    expect(stepper_row.locator(".jp-SlurmJobs-state")).to_have_text("COMPLETED", timeout=WAIT_MS)
    header = stepping.locator(".jsc-state").locator("xpath=..").inner_text()
    assert not re.search(r"elapsed 0(\.0)? s ", header), header  # a finished job's real time
    stepping.scroll_into_view_if_needed()
    screenshot(stepping, screenshots / "5-completed.png")
