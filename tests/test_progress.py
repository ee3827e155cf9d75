"""``report_progress(step=..., total=...)``: rate-limited in the job, read back with rate, time
left and the step each run resumed from; tqdm bars read from a log when a job reports nothing.

Real local jobs where the job side matters; tqdm's own ``format_meter`` makes the bar lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tqdm
from support import cancel_leftover_jobs, wait_for
from test_widget_jobs import Stepper

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.events import read_events
from jupyter_slurm_ckpt.core.progress import (
    MIN_INTERVAL_S,
    flush_progress,
    parse_tqdm,
    progress_from_events,
    progress_from_log,
)
from jupyter_slurm_ckpt.views.terminal import emulate

WAIT_S = 120.0


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[submitit.LocalExecutor]:
    folder = tmp_path / "jobs"
    yield submitit.LocalExecutor(folder)
    cancel_leftover_jobs(folder)


def progress_events(job: submitit.Job[Any]) -> list[dict[str, Any]]:
    return [event for event in job.events() if event["event"] == "progress"]


def tight_loop(steps: int) -> int:
    """Reports every one of ``steps`` steps, as fast as it can."""
    for step in range(1, steps + 1):
        submitit.report_progress(step=step, total=steps)
    return steps


def test_report_progress_refuses_what_it_cannot_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JSC_JOB_FOLDER", raising=False)
    submitit.report_progress(step=3, total=10)  # outside a job: nothing happens
    for bad, words in (
        ({"step": "3"}, "step must be a number"),
        ({"step": float("nan")}, "step must be a number"),
        ({"step": True}, "step must be a number"),
        ({"step": 1, "total": 0}, "total must be a positive number"),
        ({"total": 10}, "total needs a step"),
        ({"step": 1, "event": "x"}, "event is reserved"),
    ):
        with pytest.raises(ValueError, match=words):
            submitit.report_progress(**bad)


def test_a_tight_loop_cannot_flood_the_event_log(executor: submitit.LocalExecutor) -> None:
    steps = 60_000
    job = executor.submit(tight_loop, steps)
    assert job.result(WAIT_S) == steps

    events = job.events()
    reports = progress_events(job)
    started = next(e["t"] for e in events if e["event"] == "started")
    ended = next(e["t"] for e in events if e["event"] == "completed")
    # About one a second (the first at once, the last one at the end), not one per step.
    assert 1 <= len(reports) <= (ended - started) / MIN_INTERVAL_S + 2, len(reports)
    assert (reports[-1]["step"], reports[-1]["total"]) == (steps, steps)
    assert reports[0]["step"] == 1
    assert all(started <= r["t"] <= ended for r in reports)  # each keeps the time of its call


def test_a_held_report_is_written_when_the_interval_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In this process, as the debug backend runs jobs: the job's environment, set by hand.
    monkeypatch.setenv("JSC_JOB_FOLDER", str(tmp_path))
    monkeypatch.setenv("JSC_JOB_ID", "L1")
    events = tmp_path / "L1_events.jsonl"
    for step in (1, 2, 3):
        submitit.report_progress(step=step, total=3)
    called = time.time()

    def steps() -> list[int]:
        return [e["step"] for e in read_events(events)]

    assert steps() == [1]  # 2 and 3 came within the interval: held, 3 replaced 2
    wait_for(lambda: steps() == [1, 3], "the held report to be written", WAIT_S)
    held = read_events(events)[-1]
    assert held["t"] <= called + 0.01  # the time of the call, not of the write
    flush_progress()  # nothing held any more: nothing written twice
    assert steps() == [1, 3]


def test_preempted_once_the_progress_resumes_from_the_checkpointed_step(
    executor: submitit.LocalExecutor, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Stepper(), 200, str(release), 50)
    wait_for(
        lambda: job.done() or ((p := progress_from_events(job.events())) and p.step == 50),
        "the job to reach step 50",
        WAIT_S,
    )
    assert not job.done(), job.stderr()
    job._interrupt(timeout=False)
    wait_for(lambda: job.summary().runs == 2, "the second run", WAIT_S)
    wait_for(
        lambda: any(e.get("run") == 1 for e in progress_events(job)), "run 1's report", WAIT_S
    )

    resumed = progress_from_events(job.events())
    assert resumed is not None
    assert (resumed.run, resumed.step, resumed.resumed_from, resumed.total) == (1, 50, 50, 200)
    assert resumed.fraction == 0.25
    release.touch()
    assert job.result(WAIT_S) == 200
    final = progress_from_events(job.events())
    assert final is not None and (final.step, final.fraction, final.run) == (200, 1.0, 1)
    assert final.details.startswith("loss=")


def test_rate_and_time_left_come_from_the_current_run() -> None:
    def report(t: float, run: int, step: int) -> dict[str, Any]:
        return {"t": t, "event": "progress", "run": run, "step": step, "total": 200}

    events = [
        {"t": 0.0, "event": "started", "run": 0},
        *(report(float(t), 0, 10 * t) for t in range(11)),  # 10 steps/s in run 0
        {"t": 10.5, "event": "signal", "reason": "preemption", "task": 0},
        {"t": 20.0, "event": "started", "run": 1},
        report(20.0, 1, 80),
        {"t": 21.0, "event": "progress", "run": 1, "epoch": 3},  # free-form: no step
        report(30.0, 1, 100),  # 2 steps/s in run 1
    ]

    progress = progress_from_events(events)

    assert progress is not None
    assert (progress.step, progress.total, progress.run, progress.at) == (100, 200, 1, 30.0)
    assert progress.rate == pytest.approx(2.0)
    assert progress.eta_s == pytest.approx(50.0)
    assert progress.resumed_from == 80
    only_first = progress_from_events(events[:-1])
    assert only_first is not None and only_first.rate is None and only_first.eta_s is None
    assert progress_from_events([{"t": 1.0, "event": "progress", "run": 0, "epoch": 7}]) is None


def test_tqdm_bars_of_every_shape_are_read() -> None:
    meter = tqdm.tqdm.format_meter
    known = parse_tqdm(meter(90, 200, 1.0, prefix="train", postfix="loss=0.31"))
    assert known is not None
    assert (known.step, known.total, known.desc, known.details) == (90, 200, "train", "loss=0.31")
    assert known.rate == pytest.approx(90.0) and known.eta_s == pytest.approx(1.0)
    unknown = parse_tqdm(meter(90, None, 2.0, prefix="epoch 3"))
    assert unknown is not None and unknown.desc == "epoch 3"
    assert (unknown.step, unknown.total) == (90, None)
    assert unknown.rate == pytest.approx(45.0)
    slow = parse_tqdm(meter(3, 10, 12.0))
    assert slow is not None and slow.rate == pytest.approx(0.25) and slow.desc == ""
    scaled = parse_tqdm(meter(2500, 3000, 1.0, unit="B", unit_scale=True))
    assert scaled is not None and (scaled.step, scaled.total) == (2500, 3000)
    hours = parse_tqdm(meter(50, 100, 3 * 3600.0 + 62))
    assert hours is not None and hours.eta_s == pytest.approx(3 * 3600.0 + 62, abs=1)
    assert parse_tqdm("step 5 of 10 [done]") is None


def test_the_latest_bar_of_a_log_wins() -> None:
    meter = tqdm.tqdm.format_meter
    stderr = "".join("\r" + meter(n, 200, n / 50, prefix="train") for n in range(121))
    stdout = "epoch 1\n" + meter(7, 9, 1.0, prefix="eval") + "\nsaved\n"

    progress = progress_from_log(emulate(stderr).text, emulate(stdout).text)

    assert progress is not None and (progress.step, progress.desc) == (120, "train")
    assert progress.source == "log"
    assert progress_from_log("", emulate(stdout).text).desc == "eval"  # type: ignore[union-attr]
    assert progress_from_log("no bar", "here") is None
