"""The job widget and the status renderings, in this process (real jobs, real ipywidgets).

Outside a kernel ipywidgets talks to a dummy comm: these tests read the widgets' traits, and
``tests/test_widget_kernel.py`` checks the same widget over real comm messages.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from support import WAIT_S, wait_for
from test_widget_helpers import (  # the fixtures register as executor and watcher
    executor_fixture,  # noqa: F401
    watcher_fixture,  # noqa: F401
)
from test_widget_jobs import Waiter, echo, fail

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.html import render_html
from jupyter_slurm_ckpt.views.status import JobStatus, collect_status
from jupyter_slurm_ckpt.views.terminal import read_tail
from jupyter_slurm_ckpt.views.text import render_text
from jupyter_slurm_ckpt.views.watcher import Watcher
from jupyter_slurm_ckpt.views.widget import JobTableWidget, JobWidget, display_job, widget_for
from jupyter_slurm_ckpt.views.words import format_duration


def events(widget: JobWidget) -> list[str]:
    return [row["event"] for row in widget.timeline]


def test_widget_follows_the_job_and_its_buttons_requeue_it(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Waiter(), str(release))
    widget = JobWidget(job, watcher=watcher)
    assert widget.job_id == job.job_id and widget.job_backend == "local"
    assert widget.job_name == "waiter"
    wait_for(lambda: widget.job_state == "RUNNING", "RUNNING")
    actions = widget.actions
    wait_for(lambda: not actions.preempt_button.disabled, "the buttons to be enabled")

    actions.preempt_button.click()
    wait_for(lambda: "resumed" in events(widget) and widget.job_state == "RUNNING", "a resume")
    wait_for(lambda: not actions.timeout_button.disabled, "the buttons to be enabled again")
    actions.timeout_button.click()
    wait_for(lambda: events(widget).count("resumed") == 2, "a second resume")
    assert widget.counters == "requeued 2×: 1 preemption, 1 timeout of 3 allowed"
    assert events(widget).count("checkpoint") == 2
    took = "checkpoint() and its write took "
    assert any(row["details"].startswith(took) for row in widget.timeline)
    assert actions.error == "" and actions.last_action.startswith("Simulate timeout: done")
    wait_for(lambda: "tick" in widget._log.value, "the log tail")

    release.touch()
    wait_for(lambda: widget.job_done, "the end")
    assert widget.job_state == "COMPLETED" and widget.result.startswith("{'ticks': ")
    assert widget._outcome.layout.display is None and "result" in widget._outcome.value
    assert actions.preempt_button.disabled and actions.cancel_button.disabled

    # A failing action shows its error in the widget instead of raising.
    actions.preempt_button.click()
    wait_for(lambda: actions.error, "the action's error")
    assert actions.error.startswith("Simulate preemption failed: UncompletedJobError: job ")
    assert not actions.busy
    widget.close()


def test_cancel_button(executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path) -> None:
    job = executor.submit(Waiter(), str(tmp_path / "never"))
    widget = JobWidget(job, watcher=watcher)
    wait_for(lambda: not widget.actions.cancel_button.disabled, "the cancel button")
    widget.actions.cancel_button.click()
    wait_for(lambda: widget.job_done, "the cancellation")
    assert widget.job_state == "CANCELLED" and "cancelled" in events(widget)
    assert "without a result" in widget.failure
    assert widget.actions.cancel_button.disabled


def test_a_cancelled_job_is_resubmitted_with_its_button(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Waiter(), str(release))
    widget = JobWidget(job, watcher=watcher)
    assert widget.actions.resubmit_button.layout.display == "none"  # not while it runs
    wait_for(lambda: not widget.actions.cancel_button.disabled, "the cancel button")
    widget.actions.cancel_button.click()
    button = widget.actions.resubmit_button
    wait_for(lambda: button.layout.display == "" and not button.disabled, "the resubmit button")
    release.touch()
    widget.actions.resubmit_button.click()
    wait_for(lambda: "resubmitted as job" in widget.actions.last_action, "the resubmission")
    new_id = widget.actions.last_action.split("resubmitted as job ")[1].split()[0]
    again = submitit.Job(job.paths.folder, new_id)
    assert again.result(timeout=WAIT_S) is not None and again.info.resubmission_of == job.job_id
    wait_for(lambda: widget.actions.resubmit_button.layout.display == "none", "hidden again")
    widget.close()


def resubmit_with(view: JobWidget) -> None:
    button = view.actions.resubmit_button
    wait_for(lambda: button.layout.display == "" and not button.disabled, "the resubmit button")
    button.click()
    wait_for(lambda: "resubmitted as job" in view.actions.last_action, "the resubmission")


def test_resubmit_from_two_views_of_one_job_makes_one_job(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    job = executor.submit(Waiter(), str(tmp_path / "never"))
    wait_for(lambda: job.state == "RUNNING", "the job to run")
    job.cancel()
    again = submitit.Job(job.paths.folder, job.job_id)  # another view, as another cell shows it
    views = [JobWidget(job, watcher=watcher), JobWidget(again, watcher=watcher)]
    for view in views:
        resubmit_with(view)
    first, second = (view.actions.last_action for view in views)
    assert first.startswith("Resubmit: resubmitted as job L2 (from the last checkpoint)")
    assert second.startswith("Resubmit: already resubmitted as job L2")
    assert sorted(p.name for p in job.paths.folder.glob("*_job.json")) == [
        "L1_job.json", "L2_job.json"
    ]
    for view in views:
        view.close()
    submitit.Job(job.paths.folder, "L2").cancel()


def test_log_switch_shows_stderr(
    executor: submitit.LocalExecutor, watcher: Watcher
) -> None:
    job = executor.submit(fail, "<boom & bust>")
    widget = JobWidget(job, watcher=watcher)
    wait_for(lambda: widget.job_done and "ValueError" in widget.status.stderr_tail, "stderr")
    widget.log_stream.value = "stderr"
    assert "ValueError: &lt;boom &amp; bust&gt;" in widget._log.value
    assert widget.job_state == "FAILED"
    assert "Traceback" in widget.failure and "ValueError: <boom & bust>" in widget.failure
    assert "&lt;boom" in widget._outcome.value and "<boom" not in widget._outcome.value


def test_text_and_html_renderings_of_a_requeued_job(
    executor: submitit.LocalExecutor, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Waiter(), str(release))
    wait_for(lambda: job.state == "RUNNING", "RUNNING")
    job._interrupt(timeout=False)
    wait_for(lambda: job.summary().runs == 2, "the second run")
    release.touch()
    job.wait(WAIT_S)
    status = collect_status(job)
    text = render_text(status)
    assert text.splitlines()[0] == f"waiter · job {job.job_id} · local · COMPLETED"
    assert "requeued 1×: 1 preemption, 0 timeouts of 3 allowed" in text
    for words in ("preemption signal", "checkpoint() and its write took", "requeued", "resumed",
                  "result: {"):
        assert words in text
    page = render_html(status)
    assert "COMPLETED" in page and "<table" in page and "preemption signal" in page
    assert "tick" in page  # the log tail, for a saved notebook


def test_results_are_escaped_and_truncated(executor: submitit.LocalExecutor) -> None:
    job = executor.submit(echo, "<script>alert(1)</script>" + "x" * 5000)
    job.wait(WAIT_S)
    status = collect_status(job)
    assert status.result is not None and "characters cut" in status.result
    assert len(status.result) < 2100
    page = render_html(status)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_plain_ipython_shell_gets_readable_text(executor: submitit.LocalExecutor) -> None:
    job = executor.submit(echo, 42)
    job.wait(WAIT_S)
    shell = InteractiveShell.instance()  # a real shell without a kernel: a terminal's view
    data, _ = shell.display_formatter.format(job)
    assert data["text/plain"].startswith(f"waiter · job {job.job_id} · local · COMPLETED")
    assert "result: 42" in data["text/plain"]
    assert "text/html" in data
    assert "application/vnd.jupyter.widget-view+json" not in data


def test_widget_mimebundle_carries_the_static_fallbacks(
    executor: submitit.LocalExecutor, watcher: Watcher
) -> None:
    job = executor.submit(echo, 1)
    job.wait(WAIT_S)
    widget = JobWidget(job, watcher=watcher)
    data = widget._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert data["text/plain"].startswith("waiter · job ")
    assert "COMPLETED" in data["text/html"]
    widget.close()


def test_a_job_array_gets_one_table(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    executor.update_parameters(slots=3)  # the three run at once, whatever the machine's CPUs
    jobs = executor.map_array(Waiter(), [str(release)] * 3)
    table = JobTableWidget(jobs, watcher=watcher)
    wait_for(lambda: all(row["state"] == "RUNNING" for row in table.rows), "all RUNNING")
    table.selector.value = 1
    wait_for(lambda: not table.actions.preempt_button.disabled, "the buttons")
    table.actions.preempt_button.click()
    wait_for(lambda: table.rows[1]["requeues"] == 1, "element 1 to requeue")
    assert [row["requeues"] for row in table.rows] == [0, 1, 0]
    release.touch()
    wait_for(lambda: table.summary == "3 jobs: 3 COMPLETED", "all COMPLETED")
    data = table._repr_mimebundle_()
    assert data["text/plain"].splitlines()[0] == "3 jobs: 3 COMPLETED"
    assert all(job.job_id in data["text/html"] for job in jobs)
    table.close()


def test_pending_shows_the_schedulers_reason(
    executor: submitit.LocalExecutor, tmp_path: Path
) -> None:
    executor.update_parameters(array_parallelism=1)
    jobs = executor.map_array(Waiter(), [str(tmp_path / "release")] * 2)
    wait_for(lambda: jobs[0].state == "RUNNING", "the first element to run")
    assert jobs[1].state == "PENDING"  # waits for the first: array_parallelism=1
    status = collect_status(jobs[1])  # the local queue says why, in Slurm's words
    assert status.pending_reason == "JobArrayTaskLimit"
    assert "PENDING (JobArrayTaskLimit: its array runs at most array_parallelism" in render_text(
        status
    )
    assert "queued" in render_text(status)
    executor.update_parameters(array_parallelism=2, slots=1)
    third = executor.submit(Waiter(), str(tmp_path / "release"))
    wait_for(lambda: collect_status(third).pending_reason == "LocalSlot", "a local slot")
    assert "PENDING (LocalSlot: waiting for a local slot" in render_text(collect_status(third))


def test_debug_job_interrupts_from_the_widget(tmp_path: Path, watcher: Watcher) -> None:
    job = submitit.DebugExecutor(tmp_path / "jobs").submit(Waiter(), str(tmp_path / "r"))
    widget = JobWidget(job, watcher=watcher)
    assert not widget.actions.preempt_button.disabled  # in-process: any job not ended
    widget.actions.preempt_button.click()  # runs the checkpoint synchronously, here
    assert widget.actions.error == ""
    wait_for(lambda: "requeued" in events(widget), "the requeue in the timeline")
    widget.close()


def test_display_job_needs_jobs() -> None:
    with pytest.raises(TypeError, match="display_job"):
        display_job("L1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no jobs"):
        widget_for([])


def test_small_helpers(tmp_path: Path) -> None:
    # Tenths below 10 s: a job of 0.9 s did not take "0 s".
    assert [format_duration(s) for s in (0.96, 5, 12.7, 65, 3700, 90000)] == [
        "0.9 s", "5.0 s", "12 s", "1 min 05 s", "1 h 01 min", "1 d 01 h"
    ]
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert read_tail(log, lines=3).text == "line 4997\nline 4998\nline 4999"
    assert read_tail(tmp_path / "missing").text == ""
    status = JobStatus("L1", "n", "local", "RUNNING", problem="gone")
    assert "watcher: gone" in render_text(status)
