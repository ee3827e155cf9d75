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
from test_widget_helpers import progress_cells, submission_cells

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


#: Each button of the job views whose label does not fit: cut (an ellipsis) or out of its view.
CUT_BUTTONS = """() => [...document.querySelectorAll('.jsc-job-widget, .jsc-job-table')].flatMap(
    view => [...view.querySelectorAll('button')].filter(b => b.offsetParent !== null).flatMap(
        b => {
            const box = b.getBoundingClientRect(), outer = view.getBoundingClientRect();
            const label = b.innerText.trim() || b.title;
            if (b.scrollWidth > b.clientWidth + 1) return [`${label}: cut`];
            if (box.right > outer.right + 1) return [`${label}: out of its view`];
            return [];
        }))"""


def test_the_buttons_fit_the_width_a_notebook_has_beside_the_sidebar(
    lab: Any, page: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    # The sidebar open and a notebook of about 520 px beside it (issue 22: the buttons read
    # "Simulate preempti…", "Simul…" and "…" there).
    page.set_viewport_size({"width": 830, "height": 900})
    release = lab.root / "release-the-jobs"
    array = (
        "%%slurm --cluster local --folder jobs --name array\n"
        "import time\ndef nap(s):\n    time.sleep(s)\n    return s\n"
        "naps = [nap(s) for s in [300, 301]]"
    )
    cells = [*progress_cells(release), array]
    write_notebook(lab.root / "narrow.ipynb", "Buttons beside the sidebar", cells)
    page.goto(lab.open_url("lab/tree/narrow.ipynb"))
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jp-slurm-jobs"]').click()
    run_all_cells(page)
    widgets = page.locator(".jsc-job-widget")
    expect(widgets).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator(".jsc-job-table")).to_have_count(1, timeout=WAIT_MS)
    stepping = widgets.nth(1)
    preempt = stepping.get_by_role("button", name="Simulate preemption")
    expect(preempt).to_be_enabled(timeout=WAIT_MS)
    preempt.click()  # its note ("Simulate preemption: done at ...") takes room beside the buttons
    expect(stepping).to_contain_text("Simulate preemption: done at", timeout=WAIT_MS)
    for view in (widgets.nth(0), stepping, page.locator(".jsc-job-table")):
        expect(view.get_by_role("button", name="Cancel")).to_be_enabled(timeout=WAIT_MS)
    assert page.evaluate(CUT_BUTTONS) == []
    rows = page.locator("#jp-slurm-jobs .jp-SlurmJobs-row")
    expect(rows).to_have_count(4, timeout=WAIT_MS)  # the sidebar lists them too
    stepping.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "buttons-beside-the-sidebar.png"))
    release.touch()
