"""``clean``: old jobs' files go, a job that may still run is never touched.

Real local jobs (running, waiting for their turn in an array, killed without a word), and a
folder of ended jobs written with the package's own writers. A process of a job is a real
process holding the job's real lock.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from many_jobs import DAY_S, build_ended_jobs
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.catalog import JobCatalog
from jupyter_slurm_ckpt.core.clean import clean_folders
from jupyter_slurm_ckpt.core.events import append_event

from .jobs_for_tests import wait_file

WAIT_S = 60.0


def markers(folder: Path) -> set[str]:
    return {path.name[: -len("_job.json")] for path in folder.rglob("*_job.json")}


def test_clean_by_age_and_state_and_nothing_else(tmp_path: Path) -> None:
    built = build_ended_jobs(tmp_path, 400, arrays=2, array_size=50, days=20, now=time.time())
    before = {path.name for path in tmp_path.iterdir()}
    entries = JobCatalog().jobs([tmp_path])
    old_failed = {
        e.key.job_id
        for e in entries
        if e.final_state in ("FAILED", "TIMEOUT") and (e.ended_at or 0) < time.time() - 10 * DAY_S
    }
    assert 0 < len(old_failed) < len(built.ids["FAILED"]) + len(built.ids["TIMEOUT"])

    dry = submitit.clean(tmp_path, older_than=timedelta(days=10), states="FAILED,TIMEOUT",
                         dry_run=True)  # fmt: skip
    assert {key.job_id for key in dry.removed} == old_failed and dry.bytes > 0
    assert {path.name for path in tmp_path.iterdir()} == before  # a dry run removes nothing

    report = submitit.clean(tmp_path, older_than=10 * DAY_S, states=["failed", "timeout"])
    assert {key.job_id for key in report.removed} == old_failed and not report.kept
    left = {path.name for path in tmp_path.iterdir()}
    assert not any(name.startswith(f"{job_id}_") for job_id in old_failed for name in left)
    assert markers(tmp_path) == {e.key.job_id for e in entries} - old_failed
    # Every other file is still there, byte for byte what it was.
    assert left == {n for n in before if not any(n.startswith(f"{j}_") for j in old_failed)}


def test_a_live_state_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RUNNING is not an end state"):
        submitit.clean(tmp_path, states="COMPLETED,RUNNING")
    with pytest.raises(ValueError, match="older_than"):
        submitit.clean(tmp_path, older_than=-1)


def test_running_and_waiting_jobs_are_never_touched(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    done = local.submit(pow, 2, 3)
    done.wait(WAIT_S)
    running = local.submit(time.sleep, 600)
    local.update_parameters(array_parallelism=1)
    first, waiting, cancelled = local.map_array(time.sleep, [600, 600, 600])
    wait_for(lambda: running.state == first.state == "RUNNING", "two jobs to run", WAIT_S)
    # Cancelled while it waits: its end is recorded, but the array's launcher still holds its
    # lock (it skips it when its turn comes): a process of the job lives.
    cancelled.cancel()
    assert waiting.state == "PENDING" and cancelled.state == "CANCELLED"

    report = submitit.clean(folder)

    assert report.removed == [done.key]
    assert report.kept == {cancelled.key: "a process of the job still runs"}
    assert markers(folder) == {running.job_id, first.job_id, waiting.job_id, cancelled.job_id}
    for job in (running, first):
        assert job.state == "RUNNING"
    assert waiting.state == "PENDING"
    # Once the array's launcher let it go, it is removed; the others only once they ended.
    first.cancel()
    waiting.cancel()
    wait_for(lambda: not submitit.clean(folder).kept, "the launcher to let go", WAIT_S)
    assert markers(folder) == {running.job_id}
    assert not list(folder.glob(f"{first.job_id.partition('_')[0]}_*"))
    assert running.state == "RUNNING"


def test_a_job_whose_process_holds_its_lock_is_kept(tmp_path: Path) -> None:
    build_ended_jobs(tmp_path, 2, now=time.time())
    lock = tmp_path / "L1_local.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        report = submitit.clean(tmp_path)
        assert [key.job_id for key in report.removed] == ["L2"]
        assert [key.job_id for key in report.kept] == ["L1"]
        assert markers(tmp_path) == {"L1"}
    finally:
        holder.kill()
        holder.wait()
    assert [key.job_id for key in submitit.clean(tmp_path).removed] == ["L1"]
    assert list(tmp_path.iterdir()) == [tmp_path / ".local_job_counter"]


def test_a_job_killed_without_a_word_is_recorded_then_cleaned(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    job = local.submit(time.sleep, 600)
    wait_for(lambda: job.state == "RUNNING", "the job to run", WAIT_S)
    worker = int(job.events()[-1]["pid"])
    controller = submitit.LocalJob(folder, job.job_id)._process()
    assert controller is not None
    os.killpg(controller["pid"], signal.SIGKILL)  # the OOM killer, say
    wait_for(lambda: not Path(f"/proc/{worker}").exists(), "the worker to die", WAIT_S)
    last_sign = max(job.paths.stderr.stat().st_mtime, float(job.events()[-1]["t"]))
    # Recorded as it was when it died: an hour of age is not reached.
    assert submitit.clean(folder, older_than=3600).removed == []
    end = job.events()[-1]
    assert end["event"] == "failed" and "died without recording an end" in end["reason"]
    assert end["t"] == pytest.approx(last_sign, abs=1.0)
    assert submitit.clean(folder).removed == [job.key]


def test_per_job_folders_and_array_scripts_go_with_their_last_job(tmp_path: Path) -> None:
    executor = submitit.LocalExecutor(tmp_path / "%j")
    jobs = executor.map_array(pow, [2, 3], [2, 2])
    for job in jobs:
        job.wait(WAIT_S)
    single = executor.submit(pow, 5, 2)
    single.wait(WAIT_S)
    keep_running = submitit.LocalExecutor(tmp_path / "%j").submit(time.sleep, 600)
    try:
        wait_for(lambda: keep_running.state == "RUNNING", "the job to run", WAIT_S)
        report = submitit.clean(tmp_path)
        assert sorted(report.removed) == sorted(job.key for job in [*jobs, single])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [".local_job_counter", keep_running.job_id]
        )
    finally:
        keep_running.cancel()


def test_a_recorded_end_is_read_again_before_removal(tmp_path: Path) -> None:
    # The catalog may be a moment old: the removal reads the events again under the lock.
    build_ended_jobs(tmp_path, 1, now=time.time())
    catalog = JobCatalog()
    catalog.jobs([tmp_path])
    events = tmp_path / "L1_events.jsonl"
    events.write_text(events.read_text().split("\n", 1)[0] + "\n")  # only "submitted" left
    append_event(events, "started", run=0, node="n1", pid=1)
    report = clean_folders([tmp_path], catalog=catalog)
    assert report.removed == [] and markers(tmp_path) == {"L1"}
    assert [key.job_id for key in report.kept] == ["L1"]


@contextlib.contextmanager
def _per_job_array(tmp_path: Path) -> Iterator[tuple[Path, list[submitit.Job[str]]]]:
    """Three elements of an array in ``%j`` folders, one at a time: the first runs until the
    file it gives exists (made on the way out in any case), the others wait for their
    array's launcher."""
    release = tmp_path / "release"
    executor = submitit.LocalExecutor(tmp_path / "%j")
    executor.update_parameters(array_parallelism=1)
    jobs = executor.map_array(wait_file, [str(release)] * 3)
    try:
        wait_for(lambda: jobs[0].state == "RUNNING", "the first element to run", WAIT_S)
        yield release, jobs
    finally:
        release.touch()


def test_an_element_cancelled_in_its_own_folder_is_kept_while_its_launcher_lives(
    tmp_path: Path,
) -> None:
    # Each element in its own folder: the guard must find the lock the launcher really holds.
    with _per_job_array(tmp_path) as (release, (first, cancelled, last)):
        cancelled.cancel()
        report = submitit.clean(tmp_path)
        assert report.removed == []
        assert report.kept == {cancelled.key: "a process of the job still runs"}
        assert cancelled.paths.info.exists()
        release.touch()
        assert [first.result(timeout=WAIT_S), last.result(timeout=WAIT_S)] == ["released"] * 2
    wait_for(lambda: not submitit.clean(tmp_path).kept, "the launcher to let go", WAIT_S)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".local_job_counter", "release"]


def test_an_array_launcher_outlives_an_element_whose_folder_was_removed(tmp_path: Path) -> None:
    with _per_job_array(tmp_path) as (release, (first, removed, last)):
        shutil.rmtree(removed.paths.folder)  # by hand, while it waits
        release.touch()
        assert [first.result(timeout=WAIT_S), last.result(timeout=WAIT_S)] == ["released"] * 2
        log = first.paths.stderr.read_text()  # the launcher's
        assert f"job {removed.job_id}'s folder {removed.paths.folder} is gone" in log


def test_elements_whose_launcher_died_record_their_end_and_are_cleaned(tmp_path: Path) -> None:
    with _per_job_array(tmp_path) as (release, (first, second, third)):
        record = first.paths.folder / f"{first.job_id.partition('_')[0]}_local.json"
        launcher = json.loads(record.read_text())
        assert launcher["role"] == "launcher"
        os.kill(launcher["pid"], signal.SIGKILL)  # the array's launcher, started by this test
        wait_for(lambda: second.state == "FAILED", "the element to read FAILED", WAIT_S)
        end = second.events()[-1]  # recorded by the poll that found the launcher dead
        assert end["event"] == "failed", end
        dead = f"launcher process (pid {launcher['pid']}) ended before starting it"
        assert dead in end["reason"]
        folders = [job.paths.folder for job in (first, second, third)]
        finals = {e.key: e.final_state for e in JobCatalog().jobs(folders)}
        assert finals == {first.key: None, second.key: "FAILED", third.key: None}
        # clean asks about the third (no end in its folder yet): it records its end, and goes.
        assert sorted(submitit.clean(tmp_path).removed) == sorted([second.key, third.key])
        release.touch()  # its controller outlived the launcher
        assert first.result(timeout=WAIT_S) == "released"


def test_a_file_shared_by_an_array_counts_once_when_its_last_name_goes(
    local: submitit.LocalExecutor, folder: Path
) -> None:
    blob = os.urandom(1_000_000)  # in the payload every element shares (hard links)
    jobs = local.map_array(functools.partial(bytes.count, blob), [1, 2, 1000])  # 1000: fails
    for job in jobs:
        job.wait(WAIT_S)
    assert [job.state for job in jobs] == ["COMPLETED", "COMPLETED", "FAILED"]
    payload = jobs[0].paths.submitted_pickle.stat()
    assert payload.st_nlink == 3 and payload.st_size > len(blob)
    wait_for(lambda: not submitit.clean(folder, dry_run=True).kept, "the launcher to end", WAIT_S)
    # One element goes: the payload stays (two names left), so it frees no payload bytes.
    failed = submitit.clean(folder, states="FAILED")
    assert failed.removed == [jobs[2].key] and failed.bytes < 100_000
    # The last two go: the payload counts once.
    everything = submitit.clean(folder, dry_run=True)
    assert payload.st_size <= everything.bytes < payload.st_size + 100_000
    assert submitit.clean(folder).bytes == everything.bytes


KILLED_SUBMITTER = """
import os, signal, sys
from pathlib import Path
del os.O_TMPFILE  # as on NFS, where files without a name are not supported
from jupyter_slurm_ckpt.core.files import PendingFile
PendingFile.unnamed(Path(sys.argv[1])).write(b"x" * 1_000_000)
os.kill(os.getpid(), signal.SIGKILL)  # killed before the submission named its file
"""


def test_a_killed_submitters_file_is_removed_once_abandoned(tmp_path: Path) -> None:
    build_ended_jobs(tmp_path, 1, now=time.time())
    done = subprocess.run([sys.executable, "-c", KILLED_SUBMITTER, str(tmp_path)])
    assert done.returncode == -signal.SIGKILL
    (left,) = tmp_path.glob(".tmp-pending.*")
    assert submitit.clean(tmp_path).abandoned_files == 0
    assert left.exists()  # a submission may still be writing it
    hours_ago = time.time() - 2 * 3600
    os.utime(left, (hours_ago, hours_ago))
    dry = submitit.clean(tmp_path, dry_run=True)
    assert dry.abandoned_files == 1 and dry.bytes >= 1_000_000 and left.exists()
    report = submitit.clean(tmp_path)
    assert report.abandoned_files == 1 and "1 abandoned submission files" in repr(report)
    assert not left.exists()
