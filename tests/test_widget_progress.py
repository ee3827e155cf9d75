"""Progress bars, terminal-like log tails and elapsed times in the widget, the saved text/HTML
renderings and the job table (real local jobs, real ipywidgets in this process, real tqdm).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from support import wait_for
from test_widget_helpers import (  # the fixtures register as executor and watcher
    executor_fixture,  # noqa: F401
    watcher_fixture,  # noqa: F401
)
from test_widget_jobs import Stepper, Waiter, tqdm_loop

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.progress import Progress
from jupyter_slurm_ckpt.views.html import render_html
from jupyter_slurm_ckpt.views.listing import list_jobs
from jupyter_slurm_ckpt.views.status import JobStatus, collect_status
from jupyter_slurm_ckpt.views.text import elapsed_text, progress_text, render_text, time_left_text
from jupyter_slurm_ckpt.views.watcher import Watcher
from jupyter_slurm_ckpt.views.widget import JobTableWidget, JobWidget

WAIT_S = 120.0
BAR = re.compile(r"train: +\d+%\|")


def rows(widget: JobWidget) -> list[tuple[str, str]]:
    return [(row["event"], row["details"]) for row in widget.timeline]


def test_a_tqdm_loop_is_one_line_of_the_log_tail_and_drives_the_bar(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(tqdm_loop, 200, str(release), 120)
    widget = JobWidget(job, watcher=watcher)
    wait_for(lambda: widget.progress.get("step") == 120, "the bar at step 120 of 200", WAIT_S)

    status = widget.status
    bars = [line for line in status.stderr_tail.splitlines() if BAR.match(line)]
    assert len(bars) == 1 and "120/200" in bars[0], status.stderr_tail  # not 120 lines
    assert widget.progress["source"] == "log" and widget.progress["total"] == 200
    assert widget.progress_bar.value == 0.6 and widget.progress_bar.layout.display is None
    assert widget._progress.layout.display is None
    assert "train 120/200 (60%)" in widget._progress_label.value
    # Colours: styled in the widget's HTML, stripped from the text.
    green = '<span style="color:#00a250;font-weight:bold">training started</span>'
    assert green in widget._log.value
    assert status.stdout_tail.startswith("training started on the local backend")
    text = render_text(status)
    assert "\x1b" not in text and "progress [████████████░░░░░░░░] train 120/200 (60%)" in text
    assert green in render_html(status) and "jsc-progress-bar" in render_html(status)

    release.touch()
    wait_for(lambda: widget.job_done, "the end", WAIT_S)
    assert widget.progress_bar.value == 1.0 and widget.progress_bar.bar_style == "success"
    assert [line for line in widget.status.stderr_tail.splitlines() if BAR.match(line)] == [
        line for line in widget.status.stderr_tail.splitlines() if "200/200" in line
    ]
    widget.close()


def test_the_bar_resumes_from_the_checkpointed_step_after_a_preemption(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Stepper(), 200, str(release), 50)
    widget = JobWidget(job, watcher=watcher)
    wait_for(lambda: widget.progress.get("step") == 50, "the bar at step 50", WAIT_S)
    assert widget.progress["source"] == "report" and widget.progress_bar.value == 0.25
    wait_for(lambda: not widget.actions.preempt_button.disabled, "the buttons", WAIT_S)

    widget.actions.preempt_button.click()
    wait_for(lambda: widget.progress.get("run") == 1, "the resumed run's report", WAIT_S)

    assert widget.progress["resumed_from"] == 50 and widget.progress_bar.value == 0.25
    assert "resumed at 50 in run #1" in widget._progress_label.value
    timeline = rows(widget)
    assert ("progress", "run #0 began at step 0 of 200") in timeline
    assert ("preemption signal", "at step 50 of 200") in timeline
    assert ("progress", "run #1 resumed at step 50 of 200") in timeline
    assert timeline.index(("preemption signal", "at step 50 of 200")) < timeline.index(
        ("progress", "run #1 resumed at step 50 of 200")
    )
    assert sum(event == "progress" for event, _ in timeline) == 2  # one row a run, not a step
    assert "(run #1: " in widget.elapsed  # the run's own time beside the whole job's

    release.touch()
    wait_for(lambda: widget.job_done, "the end", WAIT_S)
    assert widget.progress["step"] == 200 and widget.progress_bar.value == 1.0
    assert widget.progress["details"].startswith("loss=")
    widget.close()


def test_job_tables_show_the_progress_of_each_job(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    jobs = executor.map_array(Stepper(), [200, 100], [str(release)] * 2, [50, 50])
    table = JobTableWidget(jobs, watcher=watcher)
    wait_for(
        lambda: [row["progress"] and row["progress"]["step"] for row in table.rows] == [50, 50],
        "both elements at step 50",
        WAIT_S,
    )
    listed = list_jobs(executor.folder)  # %slurm_jobs
    text = repr(listed)
    assert re.search(r"_0 +RUNNING .* 25%", text) and re.search(r"_1 +RUNNING .* 50%", text), text
    page = listed._repr_html_()
    assert re.search(r"<th [^>]*>progress</th>", page)
    assert page.count("class='jsc-progress-bar'") == 2
    assert "jsc-progress-bar" in table._table.value
    release.touch()
    wait_for(lambda: all(row["done"] for row in table.rows), "the end", WAIT_S)
    table.close()


def first_task_waits(release: str) -> int:
    """Task 0 waits for the release file (at most 240 s); the others return at once."""
    rank = submitit.JobEnvironment().global_rank
    deadline = time.time() + 240
    while rank == 0 and not Path(release).exists() and time.time() < deadline:
        time.sleep(0.02)
    return rank


def test_a_multi_task_job_keeps_its_elapsed_time_after_one_task_ends(
    executor: submitit.LocalExecutor, tmp_path: Path
) -> None:
    # Task 1 returns at once, task 0 waits: the job is RUNNING, and so is its clock.
    executor.update_parameters(tasks_per_node=2)
    release = tmp_path / "release"
    job = executor.submit(first_task_waits, str(release))
    wait_for(
        lambda: any(e["event"] == "completed" for e in job.events()) or job.done(),
        "task 1 to end",
        WAIT_S,
    )
    started = next(e["t"] for e in job.events() if e["event"] == "started")

    status = collect_status(job, now=started + 100.0)

    assert status.state == "RUNNING" and status.elapsed_s == 100.0
    assert elapsed_text(status) == "1 min 40 s"
    release.touch()
    job.results(WAIT_S)


def test_elapsed_counts_the_whole_job_and_the_current_run(
    executor: submitit.LocalExecutor, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Waiter(), str(release))
    wait_for(lambda: job.state == "RUNNING", "RUNNING", WAIT_S)
    job._interrupt(timeout=False)
    wait_for(lambda: job.summary().runs == 2 and job.state == "RUNNING", "run #1", WAIT_S)
    events = job.events()
    first = next(e["t"] for e in events if e["event"] == "started")
    second = [e["t"] for e in events if e["event"] == "started"][-1]

    live = collect_status(job, now=second + 5.0)
    assert live.elapsed_s == (second + 5.0) - first and live.run_elapsed_s == 5.0
    assert elapsed_text(live).endswith("(run #1: 5.0 s)")

    release.touch()
    job.result(WAIT_S)
    wait_for(lambda: any(e["event"] == "completed" for e in job.events()), "the end event")
    end = next(e["t"] for e in job.events() if e["event"] == "completed")
    done: Any = collect_status(job, now=end + 1000.0)  # finished: the clock stopped at the end
    assert done.elapsed_s == end - first and done.run_elapsed_s == end - second
    assert done.elapsed_s > 0


def test_the_time_left_counts_down_and_a_silent_job_says_so() -> None:
    progress = Progress(step=100, total=200, at=1000.0, rate=2.0, eta_s=50.0)
    running = JobStatus("L1", "train", "local", "RUNNING", progress=progress)

    assert time_left_text(running, now=1010.0) == "40 s left"
    assert progress_text(running, now=1010.0) == "100/200 (50%) · 2/s · 40 s left"
    assert time_left_text(running, now=1100.0) == "last report 1 min 40 s ago"
    finished = replace(running, state="CANCELLED", done=True)
    assert time_left_text(finished, now=1010.0) == ""
    from_log = replace(running, progress=replace(progress, at=None, source="log"))
    assert time_left_text(from_log, now=5000.0) == "50 s left"  # tqdm's own estimate
