"""The catalog of a job folder: the same answers as re-attached jobs, read once, kept current.

Real job folders: a few real local jobs (ended, failed, cancelled while they waited, running),
and folders of thousands of ended jobs written with the package's own writers
(``tests/many_jobs.py``). The catalog must agree with ``Job.state`` on every job whose end the
folder proves, call every other one open, and notice what changes: a job's end, a new job,
a removed one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from many_jobs import build_ended_jobs
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.catalog import JobCatalog, recorded_end
from jupyter_slurm_ckpt.core.events import append_event
from jupyter_slurm_ckpt.core.paths import JobKey

WAIT_S = 60.0


def test_entries_agree_with_the_jobs_own_state(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    local.update_parameters(name="power")
    done = local.submit(pow, 2, 5)
    failed = local.submit(int, "not a number")
    for job in (done, failed):
        job.wait(WAIT_S)
    local.update_parameters(array_parallelism=1)
    first, waiting = local.map_array(time.sleep, [600, 600])
    waiting.cancel()  # while it waited for its turn
    wait_for(lambda: first.state == "RUNNING", "the first element to run", WAIT_S)

    catalog = JobCatalog()
    entries = {entry.key.job_id: entry for entry in catalog.jobs([folder])}

    assert list(entries) == [waiting.job_id, first.job_id, failed.job_id, done.job_id]
    for job in (done, failed, waiting):
        entry = entries[job.job_id]
        assert (entry.final_state, entry.open) == (job.state, False), job.job_id
        assert entry.ended_at is not None and entry.ended_at >= job.info.submitted_at
    assert entries[first.job_id].open and entries[first.job_id].final_state is None
    assert entries[done.job_id].name == "power" and entries[done.job_id].cluster == "local"
    first.cancel()
    entry = wait_for(
        lambda: catalog.entries([JobKey(folder, first.job_id)])[0].final_state, "its end", WAIT_S
    )
    assert entry == "CANCELLED"


def test_a_second_look_reads_only_what_changed(tmp_path: Path) -> None:
    built = build_ended_jobs(tmp_path, 300, arrays=2, array_size=50, now=time.time())
    catalog = JobCatalog()
    first = catalog.jobs([tmp_path])
    assert len(first) == 300
    times = [entry.submitted_at for entry in first]
    assert times == sorted(times, reverse=True)
    by_state = {state: len(ids) for state, ids in built.ids.items()}
    by_state["COMPLETED"] = by_state.pop("COMPLETED") + by_state.pop("REQUEUED_COMPLETED")
    assert {s: sum(e.final_state == s for e in first) for s in by_state} == by_state
    again = catalog.jobs([tmp_path])  # nothing changed: nothing read again
    assert len(again) == len(first) and all(a is b for a, b in zip(again, first))
    # A job removed, and a new one: the folder's listing moved.
    gone = first[0].key
    for path in tmp_path.glob(f"{gone.job_id}_*"):
        path.unlink()
    job = submitit.LocalExecutor(tmp_path).submit(pow, 3, 2)
    job.wait(WAIT_S)
    again = catalog.jobs([tmp_path])
    assert gone not in {e.key for e in again}
    assert again[0].key == job.key and again[0].final_state == "COMPLETED"
    assert len(again) == 300


def test_an_unreadable_description_is_an_entry_with_its_problem(tmp_path: Path) -> None:
    build_ended_jobs(tmp_path, 3, now=time.time())
    (tmp_path / "L9_job.json").write_text("{ not json")
    entries = {e.key.job_id: e for e in JobCatalog().jobs([tmp_path])}
    assert entries["L9"].problem is not None and "JobFolderError" in entries["L9"].problem
    assert not entries["L9"].open and entries["L1"].problem is None


@pytest.mark.parametrize(
    ("events", "tasks", "expected"),
    [
        ([("completed", {"task": 0})], 1, "COMPLETED"),
        ([("completed", {"task": 0})], 2, None),  # task 1 still runs
        ([("completed", {"task": 1}), ("failed", {"task": 0})], 2, "FAILED"),
        ([("failed", {"state": "TIMEOUT", "reason": "limit"})], 1, "TIMEOUT"),
        ([("cancelled", {"by": "user"})], 1, "CANCELLED"),
        ([("cancelled", {"by": "user"}), ("completed", {"task": 0})], 1, "COMPLETED"),
        ([("started", {"run": 0})], 1, None),
    ],
)
def test_recorded_end(
    events: list[tuple[str, dict[str, object]]], tasks: int, expected: str | None
) -> None:
    records = [{"t": float(i), "event": name, **fields} for i, (name, fields) in enumerate(events)]
    end = recorded_end(records, tasks)
    assert (end[0] if end else None) == expected


def test_an_ended_job_is_not_looked_at_again_until_its_folder_changes(tmp_path: Path) -> None:
    build_ended_jobs(tmp_path, 5, now=time.time())
    catalog = JobCatalog()
    key = JobKey(tmp_path, "L1")
    (before,) = catalog.entries([key])
    events = tmp_path / "L1_events.jsonl"
    stat = events.stat()
    append_event(events, "resubmitted", job_id="L99")
    os.utime(events, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert catalog.entries([key])[0] is before  # its end cannot change: not read again
    (tmp_path / "L5_job.json").rename(tmp_path / "L5_job.json.bak")  # the folder changes
    (after,) = catalog.entries([key])
    assert after is not before and after == before
