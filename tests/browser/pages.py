"""Helpers of the browser tests (this module has no tests): notebooks to open, waiting for the
kernel, screenshots of widgets that JupyterLab may re-render while they are taken."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import nbformat

WAIT_MS = 180_000  # generous: a Jupyter server, a kernel and jobs share 2 busy cores

KERNEL_IDLE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return !!kernel && kernel.status === 'idle';
}"""

RUN_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"


def write_notebook(path: Path, title: str, cells: list[str]) -> None:
    """A Python notebook: a markdown title, then ``cells`` as code cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)


def run_all_cells(page: Any) -> None:
    """Wait for the notebook's kernel, then run every cell (JupyterLab and Notebook 7)."""
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)
    page.evaluate(RUN_ALL)


def screenshot(element: Any, path: Path) -> None:
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


def wait_for_saved_html(path: Path, text: str) -> str:
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


def preempt_with_the_widget(page: Any, screenshots: Path) -> Any:
    """With the notebook of ``submission_cells`` running: wait for its job to run, click the
    widget's *Simulate preemption*, and wait for the requeue and the resume in its timeline.
    Saves ``1-running.png`` and ``2-after-preemption.png``; returns the widget's locator."""
    from playwright.sync_api import expect

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
    screenshot(widget, screenshots / "2-after-preemption.png")
    return widget


def color_of(locator: Any) -> str:
    """The computed CSS colour of an element ("rgb(r, g, b)")."""
    return str(locator.evaluate("element => getComputedStyle(element).color"))
