"""The live widget in a real browser: JupyterLab from PyPI, Debian's chromium, Playwright.

Opens a notebook, runs it, clicks *Simulate preemption* and waits for the requeue and the resume
to appear in the widget's timeline, then saves the notebook and renders its static fallback.
Screenshots land in ``out/browser/<test name>/`` (fixtures: ``tests/browser/conftest.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pages import (
    WAIT_MS,
    preempt_with_the_widget,
    run_all_cells,
    screenshot,
    wait_for_saved_html,
    write_notebook,
)
from test_widget_helpers import submission_cells

pytestmark = pytest.mark.browser


def test_preemption_button_requeues_the_job_in_jupyterlab(
    lab: Any, page: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    release = lab.root / "release-the-job"
    notebook = lab.root / "widget_demo.ipynb"
    write_notebook(notebook, "A job that survives preemption", submission_cells(release))
    page.goto(lab.open_url("lab/tree/widget_demo.ipynb"))
    run_all_cells(page)

    widget = preempt_with_the_widget(page, screenshots)
    preempt = widget.get_by_role("button", name="Simulate preemption")

    release.touch()
    expect(widget.locator(".jsc-state")).to_have_text("COMPLETED", timeout=WAIT_MS)
    expect(widget.locator(".jsc-result")).to_contain_text("{'ticks': ", timeout=WAIT_MS)
    expect(preempt).to_be_disabled(timeout=WAIT_MS)
    # Its real run time, to the tenth below 10 s (never "elapsed 0 s" for a job that ran).
    header = widget.locator(".jsc-state").locator("xpath=..").inner_text()
    elapsed = re.search(r"elapsed (\d+(?:\.\d)?) s", header)
    assert elapsed and float(elapsed.group(1)) > 0, header
    screenshot(widget, screenshots / "3-completed.png")

    # Saved, the notebook keeps the last state as static HTML (shown without a kernel).
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    saved = wait_for_saved_html(notebook, "COMPLETED")
    static = page.context.browser.new_page(viewport={"width": 900, "height": 500})
    try:
        static.set_content(saved)
        static.screenshot(path=str(screenshots / "4-saved-fallback.png"), full_page=True)
    finally:
        static.close()
    assert (screenshots / "2-after-preemption.png").stat().st_size > 0
