"""Corrupt state: damaged job files give a clear error naming the file, and every view keeps
working for the other jobs of the folder.

Real local jobs submitted through a real ``InteractiveShell``; their files are then damaged the
way disks, full quotas, killed writers and other environments damage them: truncated or garbage
pickles, a pickle that is not ours, a payload written by another Python (its header, which is
what the version check reads, says 3.9.18: no second interpreter is installed here), garbage and
ill-typed lines in the events file, a garbage job description.
"""

from __future__ import annotations

import os
import pickle
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import WAIT_S, rewrite_payload_header, wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.errors import FailedJobError, JobFolderError, PayloadError
from jupyter_slurm_ckpt.views.status import JobStatus, collect_status
from jupyter_slurm_ckpt.views.text import render_text
from jupyter_slurm_ckpt.views.watcher import Watcher
from jupyter_slurm_ckpt.views.widget import JobTableWidget, JobWidget

OTHER_PYTHON = "3.9.18"

CELL = """\
import os, time
def wait_file(path, value):
    while not os.path.exists(path):
        time.sleep(0.05)
    return value
"""


# -- ways to damage a file ------------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def foreign_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))


def other_python(path: Path) -> None:
    rewrite_payload_header(path, python=OTHER_PYTHON)  # the header is a line of JSON


PICKLE_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate, "{path} is truncated or is not a jupyter_slurm_ckpt pickle"),
    "garbage": (garbage, "{path} is truncated or is not a jupyter_slurm_ckpt pickle"),
    "empty": (empty, "{path} is truncated or is not a jupyter_slurm_ckpt pickle"),
    "not ours": (foreign_pickle, "{path} is not a jupyter_slurm_ckpt pickle (unknown format)"),
    "other python": (other_python, f"{{path}} was written by Python {OTHER_PYTHON} with"),
}

EVENT_DAMAGE = {
    "garbage bytes": b"\x00\xff\xfe garbage \x80\n",
    "not json": b"{started, run=2\n",
    "not an object": b'["started", 2]\n',
    "no event name": b'{"t": 1.0, "run": 2}\n',
    "no time": b'{"event": "started", "run": 2}\n',
    "ill-typed time": b'{"t": "noon", "event": "started", "run": 2}\n',
    "ill-typed field": b'{"t": 1.0, "event": "started", "run": "second", "pid": 1}\n',
    "ill-typed counter": b'{"t": 1.0, "event": "checkpoint", "seconds": "slow"}\n',
}


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "slurm_jobs"


def running(job: submitit.Job[Any], runs: int = 1) -> Callable[[], bool]:
    """A condition: the job's run number ``runs`` has started and it is RUNNING."""
    return lambda: job.summary().runs == runs and job.state == "RUNNING"


def progressed(job: submitit.Job[Any], count: int) -> Callable[[], bool]:
    """A condition: the job has reported progress ``count`` times."""
    return lambda: sum(event["event"] == "progress" for event in job.events()) == count


def finished(executor: submitit.LocalExecutor, value: Any) -> submitit.Job[Any]:
    job = executor.submit(int, value)
    assert job.result(timeout=WAIT_S) == value
    return job


# -- each damage, named ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", list(PICKLE_DAMAGE))
def test_a_damaged_result_names_its_file(folder: Path, damage: str) -> None:
    executor = submitit.LocalExecutor(folder)
    job, other = finished(executor, 1), finished(executor, 2)
    spoil, expected = PICKLE_DAMAGE[damage]
    path = job.paths.result_pickle
    spoil(path)
    attached: submitit.Job[Any] = submitit.Job(folder, job.job_id)  # as after a restart
    with pytest.raises(FailedJobError) as caught:
        attached.result()
    assert expected.format(path=path) in str(caught.value)
    status = collect_status(attached)
    assert status.failure is not None and expected.format(path=path) in status.failure
    assert submitit.Job(folder, other.job_id).result() == 2  # its neighbour is untouched


@pytest.mark.parametrize("damage", list(PICKLE_DAMAGE))
def test_a_damaged_payload_names_its_file_where_it_is_loaded(folder: Path, damage: str) -> None:
    # A plain function is requeued from scratch: the next run loads the payload file again.
    executor = submitit.LocalExecutor(folder)
    release = folder.parent / "release"
    job = executor.submit(_wait_file, str(release), "done")
    wait_for(lambda: job.state == "RUNNING", "the first run")
    spoil, expected = PICKLE_DAMAGE[damage]
    path = job.paths.submitted_pickle
    spoil(path)
    with pytest.raises(PayloadError, match=re.escape(expected.format(path=path))):
        job.submission()
    job._interrupt()
    job.wait(WAIT_S)
    assert job.state == "FAILED"
    with pytest.raises(FailedJobError) as caught:
        job.result()
    assert expected.format(path=path) in str(caught.value)
    failed = [e for e in job.events() if e["event"] == "failed"]
    assert len(failed) == 1 and expected.format(path=path) in failed[0]["reason"]


def _wait_file(path: str, value: Any) -> Any:
    while not os.path.exists(path):
        time.sleep(0.05)
    return value


@pytest.mark.parametrize("damage", list(EVENT_DAMAGE))
def test_damaged_event_lines_are_skipped_and_reported(folder: Path, damage: str) -> None:
    job = finished(submitit.LocalExecutor(folder), 7)
    lines = job.paths.events.read_bytes().splitlines(keepends=True)
    # In the middle of the log (before the end events), as a bad disk block would put it.
    lines.insert(2, EVENT_DAMAGE[damage])
    job.paths.events.write_bytes(b"".join(lines))
    attached: submitit.Job[Any] = submitit.Job(folder, job.job_id)
    assert attached.state == "COMPLETED" and attached.result() == 7
    assert attached.summary().runs == 1
    assert attached.unreadable_event_lines == 1
    status = collect_status(attached)
    assert status.problem == f"1 damaged line skipped in {job.paths.events}"
    assert status.state == "COMPLETED" and status.result == "7"
    assert f"1 damaged line skipped in {job.paths.events}" in render_text(status)


# -- every view keeps working for the other jobs -------------------------------------------------


class Recorder:
    """A watcher callback: keeps the last statuses (sets state only, as a view must)."""

    def __init__(self) -> None:
        self.last: dict[str, JobStatus] = {}

    def __call__(self, statuses: list[JobStatus]) -> None:
        for status in statuses:
            self.last[status.job_id] = status


def test_views_keep_working_for_the_other_jobs(ipython: Any, tmp_path: Path) -> None:
    folder = tmp_path / "slurm_jobs"
    release, hold = tmp_path / "release", tmp_path / "hold"
    ipython.run("%config SlurmMagics.local_slots = 8")  # four jobs must run at once
    ipython.run(f"%%slurm --cluster local --no-widget\n{CELL}done = wait_file('/', 'done')\n")
    for name in ("live_a", "live_b"):
        ipython.run(f"%slurm --cluster local --no-widget {name} = wait_file({str(release)!r}, "
                    f"{name!r})")
    for name in ("bad_result", "bad_events", "bad_info"):
        ipython.run(f"%slurm --cluster local --no-widget {name} = wait_file('/', {name!r})")
    for name in ("bad_payload", "old_python"):  # these two wait: their payload is damaged live
        ipython.run(f"%slurm --cluster local --no-widget {name} = wait_file({str(hold)!r}, 0)")
    jobs = {name: ipython.ns[name] for name in (
        "done", "live_a", "live_b", "bad_result", "bad_events", "bad_payload", "old_python",
        "bad_info",
    )}
    for name in ("done", "bad_result", "bad_events", "bad_info"):
        assert jobs[name].result(timeout=WAIT_S) == name
    for name in ("live_a", "live_b", "bad_payload", "old_python"):
        wait_for(running(jobs[name]), f"{name} to run")

    # Damage: a result, the event log, two payloads of running jobs (then preempted: the next
    # run loads them), and a job description.
    garbage(jobs["bad_result"].paths.result_pickle)
    with open(jobs["bad_events"].paths.events, "ab") as events:
        events.write(b"\x00\xffgarbage\n" + b'{"t": 1.0, "event": "started", "run": "x"}\n')
    truncate(jobs["bad_payload"].paths.submitted_pickle)
    other_python(jobs["old_python"].paths.submitted_pickle)
    jobs["bad_info"].paths.info.write_text("{ not json")

    watcher = Watcher(min_interval_s=0.02, max_interval_s=0.2, final_grace_s=5.0)
    readable = [job for name, job in jobs.items() if name != "bad_info"]
    recorder = Recorder()
    subscription = watcher.watch(readable, recorder)
    table = JobTableWidget(readable, watcher=watcher)
    single = JobWidget(jobs["bad_events"], watcher=watcher)
    try:
        for name in ("bad_payload", "old_python"):
            jobs[name]._interrupt()
        release.touch()

        def settled() -> bool:
            states = {s.job_id: s.state for s in recorder.last.values()}
            return all(states.get(job.job_id) in ("COMPLETED", "FAILED") for job in readable)

        wait_for(settled, "every readable job to end, seen by the watcher")
        seen = {name: recorder.last[job.job_id] for name, job in jobs.items() if job in readable}
        assert subscription.error is None
        for name in ("done", "live_a", "live_b"):
            assert (seen[name].state, seen[name].result) == ("COMPLETED", repr(name))
        bad_result = str(jobs["bad_result"].paths.result_pickle)
        assert bad_result in (seen["bad_result"].failure or "")
        assert seen["bad_events"].result == "'bad_events'"
        events_path = jobs["bad_events"].paths.events
        assert seen["bad_events"].problem == f"2 damaged lines skipped in {events_path}"
        payload_path = str(jobs["bad_payload"].paths.submitted_pickle)
        assert seen["bad_payload"].state == "FAILED"
        assert f"{payload_path} is truncated" in (seen["bad_payload"].failure or "")
        assert seen["old_python"].state == "FAILED"
        assert f"written by Python {OTHER_PYTHON}" in (seen["old_python"].failure or "")

        # The widgets, fed by the same watcher.
        wait_for(lambda: table.summary.startswith("7 jobs:"), "the table widget")
        rows = {row["job_id"]: row["state"] for row in table.rows}
        wait_for(
            lambda: {r["job_id"]: r["state"] for r in table.rows}[jobs["live_b"].job_id]
            == "COMPLETED",
            "the table to show the released jobs",
        )
        rows = {row["job_id"]: row["state"] for row in table.rows}
        assert rows[jobs["live_a"].job_id] == "COMPLETED"
        assert rows[jobs["bad_payload"].job_id] == "FAILED"
        wait_for(lambda: single.job_done, "the single widget")
        assert single.result == "'bad_events'"
        assert f"2 damaged lines skipped in {events_path}" in single._header.value
    finally:
        table.close()
        single.close()
        subscription.cancel()
        assert watcher.join(WAIT_S)

    # A new session (no job objects left): %slurm_jobs re-attaches the others.
    ipython.shell.reset(new_session=False)
    listed = ipython.run("%slurm_jobs")
    info_path = jobs["bad_info"].paths.info
    assert sorted(listed.unreadable) == [jobs["bad_info"].job_id]
    assert listed.unreadable[jobs["bad_info"].job_id] == (
        f"JobFolderError: {info_path} is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 3 (char 2))"
    )
    states = {status.job_id: status.state for status in listed.statuses}
    assert len(states) == 7
    for name in ("done", "live_a", "live_b"):
        assert states[jobs[name].job_id] == "COMPLETED"
        assert listed[jobs[name].job_id].result() == name
    assert states[jobs["bad_payload"].job_id] == states[jobs["old_python"].job_id] == "FAILED"
    text = repr(listed)
    assert f"{jobs['bad_info'].job_id:<10} unreadable: JobFolderError: {info_path}" in text
    assert f"problem: 2 damaged lines skipped in {events_path}" in text
    assert f"2 damaged lines skipped in {events_path}" in listed._repr_html_()
    with pytest.raises(JobFolderError, match=re.escape(f"{info_path} is not valid JSON")):
        submitit.Job(folder, jobs["bad_info"].job_id)


class Reporting(submitit.helpers.Checkpointable):
    """Reports progress with fields named like the lifecycle events' own, and waits."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, release: str) -> int:
        self.runs += 1
        submitit.report_progress(epoch=self.runs, reason=5, node=[1], seconds="a while")
        while not os.path.exists(release):
            time.sleep(0.02)
        return self.runs


def test_every_event_the_core_writes_passes_the_checks(folder: Path) -> None:
    # The checks must not reject real events: submitted, started, progress (free-form fields),
    # signal, checkpoint, requeued (twice: a preemption and a timeout), completed.
    release = folder.parent / "release"
    job = submitit.LocalExecutor(folder).submit(Reporting(), str(release))
    for run, timeout in ((1, False), (2, True)):
        wait_for(running(job, run), f"run {run}")
        wait_for(progressed(job, run), f"the progress of run {run}")
        job._interrupt(timeout=timeout)
    wait_for(lambda: job.summary().runs == 3, "the third run")
    release.touch()
    assert job.result(timeout=WAIT_S) == 3
    attached: submitit.Job[Any] = submitit.Job(folder, job.job_id)
    assert attached.unreadable_event_lines == 0
    names = [event["event"] for event in attached.events()]
    assert len(names) == len(job.paths.events.read_text().splitlines())
    assert {"submitted", "started", "progress", "signal", "checkpoint", "requeued"} <= set(names)
    assert names[-1] == "completed" and collect_status(attached).problem is None
