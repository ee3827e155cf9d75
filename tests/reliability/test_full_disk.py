"""A full disk: every write that fails says why where the user looks, and nothing is lost.

The job folders live on a real small tmpfs (``full_disk``: the kernel's own ENOSPC and short
writes). Each test is a reproduction of issue 22: it failed before the change.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import WAIT_S, cancel_leftover_jobs, wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.events import EventReader, append_event
from jupyter_slurm_ckpt.core.files import TEMP_PREFIX, WriteError
from jupyter_slurm_ckpt.views.status import collect_status

from .full_disk import MB, CannotMount, fill, small_filesystem


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs of this test's own."""
    try:
        with small_filesystem(tmp_path / "disk", 64 * MB) as mounted:
            yield mounted
            cancel_leftover_jobs(mounted)
    except CannotMount as error:
        pytest.skip(f"{error}: the full-disk tests need a filesystem they can fill")


def test_an_event_cut_short_leaves_nothing_and_the_next_event_is_whole(small_disk: Path) -> None:
    events = small_disk / "L1_events.jsonl"
    append_event(events, "submitted")
    filler = fill(small_disk)
    refused = []
    for step in range(2):  # the first fits in the last page's slack, the second is cut short
        try:
            append_event(events, "progress", step=step, note="x" * 2900)
        except WriteError as error:
            refused.append(error)
    assert [error.errno for error in refused] == [errno.ENOSPC]
    assert "No space left on device" in str(refused[0])
    filler.unlink()  # space again: what comes next is recorded whole
    append_event(events, "completed")
    reader = EventReader(events)
    assert [e["event"] for e in reader.read()] == ["submitted", "progress", "completed"]
    assert reader.bad_lines == 0 and events.read_bytes().endswith(b"\n")


def big_result(megabytes: int) -> bytes:
    return b"\1" * (megabytes * MB)


def test_a_result_that_cannot_be_written_says_no_space_left(small_disk: Path) -> None:
    job = submitit.LocalExecutor(small_disk / "jobs").submit(big_result, 70)
    job.wait(WAIT_S)
    assert job.state == "FAILED"
    (failed,) = [e for e in job.events() if e["event"] == "failed"]
    assert "the result could not be written" in failed["reason"]
    assert "No space left on device (ENOSPC)" in failed["reason"]
    with pytest.raises(submitit.UncompletedJobError, match=r"No space left on device \(ENOSPC\)"):
        job.result()
    shown = collect_status(submitit.Job(job.paths.folder, job.job_id))  # what the widget shows
    assert "No space left on device (ENOSPC)" in (shown.failure or "")
    # Nothing half-written stays behind, and the job can go on once there is room.
    assert not job.paths.result_pickle.exists()
    assert not list(job.paths.folder.glob(f"{TEMP_PREFIX}*"))
    assert payload.load(job.paths.submitted_pickle).args == (70,)


class BigState(submitit.Checkpointable):
    """A state of 40 MiB: two copies do not fit on the 64 MiB disk."""

    def __init__(self) -> None:
        self.blob = b"\2" * (40 * MB)
        self.steps = 0

    def __call__(self, release: str) -> int:
        import pathlib
        import time

        while not pathlib.Path(release).exists():
            self.steps += 1
            time.sleep(0.05)
        return self.steps


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_one(
    small_disk: Path, tmp_path: Path
) -> None:
    executor = submitit.LocalExecutor(small_disk / "jobs")
    executor.update_parameters(signal_delay_s=2)
    job: submitit.Job[Any] = executor.submit(BigState(), str(tmp_path / "never"))
    wait_for(lambda: job.state == "RUNNING", "the job to run")
    before = job.paths.submitted_pickle.read_bytes()
    job._interrupt()
    job.wait(WAIT_S)
    reason = job.summary().not_requeued_reason or ""
    assert "the new payload could not be written" in reason and "No space left" in reason
    with pytest.raises(submitit.UncompletedJobError, match="No space left"):
        job.result()
    assert job.paths.submitted_pickle.read_bytes() == before  # the last checkpoint, intact
    assert not list(job.paths.folder.glob(f"{TEMP_PREFIX}*"))


def running_job_on_a_full_disk(
    small_disk: Path,
) -> tuple[submitit.Job[Any], dict[str, Any], Path]:
    """A local job that runs, its controller's record, and the file that fills the disk: no
    event of the job fits any more (the events file's last page is filled too)."""
    job = submitit.LocalExecutor(small_disk / "jobs").submit(time.sleep, 600)
    wait_for(lambda: job.state == "RUNNING", "the job to run")
    controller = json.loads(job.paths.local_process.read_text())
    filler = fill(small_disk)
    with pytest.raises(WriteError):
        for step in range(10):
            append_event(job.paths.events, "progress", step=step, note="x" * 1000)
    return job, controller, filler


def test_a_cancel_on_a_full_disk_stops_the_job_and_says_it_was_not_recorded(
    small_disk: Path,
) -> None:
    job, controller, filler = running_job_on_a_full_disk(small_disk)
    with pytest.raises(WriteError, match=r"No space left on device \(ENOSPC\).*were stopped"):
        job.cancel()
    assert not processes.is_alive(controller["pid"], controller.get("start_time"))
    filler.unlink()
    assert job.state == "FAILED"  # its end read from its processes' absence, once recorded


def test_a_state_read_on_a_full_disk_tells_a_lost_job_without_recording_it(
    small_disk: Path,
) -> None:
    job, controller, filler = running_job_on_a_full_disk(small_disk)
    os.killpg(controller["pid"], signal.SIGKILL)  # the OOM killer: no word from the job
    wait_for(lambda: not processes.is_alive(controller["pid"], controller.get("start_time")),
             "the job's processes to end")  # fmt: skip
    # What a widget's poll reads: the end, although the disk refuses to record it.
    assert submitit.Job(job.paths.folder, job.job_id).state == "FAILED"
    assert job.summary().terminal is None
    filler.unlink()
    assert submitit.Job(job.paths.folder, job.job_id).state == "FAILED"  # recorded now
    assert job.summary().terminal is not None
