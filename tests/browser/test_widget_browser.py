"""The live widget in a real browser: JupyterLab from PyPI, Debian's chromium, Playwright.

Opens a notebook, runs it, clicks *Simulate preemption* and waits for the requeue and the resume
to appear in the widget's timeline, then saves the notebook and renders its static fallback.
Screenshots land in ``out/browser/<test name>/`` (fixtures: ``tests/browser/conftest.py``).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_widget_helpers import submission_cells

pytestmark = pytest.mark.browser

WAIT_MS = 180_000  # generous: JupyterLab, a kernel and a job share 2 busy cores


def _write_notebook(path: Path, release: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    notebook.cells = [nbformat.v4.new_markdown_cell("# A job that survives preemption")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in submission_cells(release)]
    nbformat.write(notebook, path)


def _wait_for_saved_html(path: Path, text: str) -> str:
    """The text/html output of the saved notebook once it contains ``text``."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        with contextlib.suppress(ValueError, OSError):
            notebook = nbformat.read(path, as_version=4)
            for cell in notebook.cells:
                for out in cell.get("outputs", []):
                    page = out.get("data", {}).get("text/html", "")
                    if text in page:
                        return str(page)
        time.sleep(0.2)
    raise AssertionError(f"no saved text/html output with {text!r} in {path}")


KERNEL_IDLE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return !!kernel && kernel.status === 'idle';
}"""


def _screenshot(element: Any, path: Path) -> None:
    """Screenshot a widget; JupyterLab renders an output again when the kernel re-publishes
    it (after a state change), so a view may be replaced while the picture is taken."""
    from playwright.sync_api import Error

    for attempt in range(5):
        try:
            element.screenshot(path=str(path))
            return
        except Error:
            if attempt == 4:
                raise


def test_preemption_button_requeues_the_job_in_jupyterlab(
    lab: Any, page: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    release = lab.root / "release-the-job"
    _write_notebook(lab.root / "widget_demo.ipynb", release)
    page.goto(lab.open_url("lab/tree/widget_demo.ipynb"))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    widget = page.locator(".jsc-job-widget")
    preempt = widget.get_by_role("button", name="Simulate preemption")
    expect(widget.locator(".jsc-state")).to_have_text("RUNNING", timeout=WAIT_MS)
    expect(preempt).to_be_enabled(timeout=WAIT_MS)
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "1-running.png"))

    preempt.click()
    timeline = widget.locator(".jsc-timeline")
    expect(timeline).to_contain_text("preemption signal", timeout=WAIT_MS)
    expect(timeline).to_contain_text("requeued", timeout=WAIT_MS)
    expect(timeline).to_contain_text("resumed", timeout=WAIT_MS)
    expect(widget.locator(".jsc-counters")).to_contain_text(
        "requeued 1×: 1 preemption, 0 timeouts of 3 allowed", timeout=WAIT_MS
    )
    _screenshot(widget, screenshots / "2-after-preemption.png")

    release.touch()
    expect(widget.locator(".jsc-state")).to_have_text("COMPLETED", timeout=WAIT_MS)
    expect(widget.locator(".jsc-result")).to_contain_text("{'ticks': ", timeout=WAIT_MS)
    expect(preempt).to_be_disabled(timeout=WAIT_MS)
    _screenshot(widget, screenshots / "3-completed.png")

    # Saved, the notebook keeps the last state as static HTML (shown without a kernel).
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    saved = _wait_for_saved_html(lab.root / "widget_demo.ipynb", "COMPLETED")
    static = page.context.browser.new_page(viewport={"width": 900, "height": 500})
    try:
        static.set_content(saved)
        static.screenshot(path=str(screenshots / "4-saved-fallback.png"), full_page=True)
    finally:
        static.close()
    assert (screenshots / "2-after-preemption.png").stat().st_size > 0
