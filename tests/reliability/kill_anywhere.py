"""Fault injection: SIGKILL a local job at random moments, then audit its folder.

Used by the suite (a small sample) and by ``benchmarks/kill_anywhere.py`` (200+ trials). A
trial submits an accumulator whose payload and result are tens of MB (so writing them takes
a while), and SIGKILLs the whole job — controller and workers — in one of four ways:
``random`` (after a random delay, while the job is preempted as fast as it restarts, so
checkpoints and events are written all the time), ``checkpoint`` (the same storm, killed the
moment a write of the payload is seen to begin), ``result`` (killed the moment the result
starts to be written) and ``full`` (the same storm in a job folder on a small filesystem of its
own, filled at a random moment: the trial records events until the disk refuses one, the job's
checkpoints, events and results fail to be written, and the job is killed while the disk is
full; the space comes back afterwards). The audit then
loads every file the job folder holds: each must be complete. Events appended once there is
room again must all be read back (none lost to a line a full disk cut short). Finally the last
complete checkpoint is submitted again and must resume from it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends import processes
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.errors import PayloadError
from jupyter_slurm_ckpt.core.events import EventReader, append_event
from jupyter_slurm_ckpt.core.files import TEMP_PREFIX

from . import full_disk

BLOB_BYTES = 24 * 1024 * 1024
TARGET = 60
MODES = ("random", "checkpoint", "result", "full")
#: The filesystem of a ``full`` trial: the payload, one checkpoint being written and the logs.
FULL_DISK_BYTES = 96 * 1024 * 1024
#: What every job that ran to its end records, in this order.
LIFECYCLE = ("submitted", "started", "completed")


class Accumulator(submitit.Checkpointable):
    """Counts to ``target``; carries a big blob so that its pickles take a while to write."""

    def __init__(self) -> None:
        self.count = 0
        self.starts: list[int] = []
        self.blob = os.urandom(BLOB_BYTES)

    def __call__(self, target: int) -> dict[str, Any]:
        self.starts.append(self.count)
        while self.count < target:
            self.count += 1
            time.sleep(0.01)
        return {"count": self.count, "starts": self.starts, "blob": self.blob}


@dataclass
class Audit:
    """What one trial found."""

    mode: str
    kill_after_s: float
    files_checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    leftover_temporaries: int = 0
    checkpoint_count: int | None = None
    resumed_from: int | None = None
    resumed_ok: bool = False
    target: int = TARGET
    #: Events written once there was room again that could not be read back.
    lost_events: int = 0
    #: Why the job resubmitted from the last checkpoint did not return its result, if so.
    resume_error: str | None = None


def _storm(job: submitit.Job[Any], stop: threading.Event, rng: random.Random) -> None:
    """Preempt the job soon after each time it runs again (it progresses a little each run)."""
    interrupted_runs = 0
    while not stop.is_set():
        runs = job.summary().runs
        if runs > interrupted_runs and job.state == "RUNNING":
            time.sleep(rng.uniform(0.0, 0.1))
            try:
                job._interrupt()
                interrupted_runs = runs
            except Exception:
                pass  # between runs, or already killed
        time.sleep(0.005)


def _kill_job(job: submitit.LocalJob) -> None:
    record = json.loads(job.paths.local_process.read_text())
    pid = record["pid"]
    victims = [pid, *processes.descendants(pid)]
    processes.signal_all(victims, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(processes.is_alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.005)


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_size, info.st_mtime_ns)


def _wait_for_write(job: submitit.Job[Any], target: Path, timeout: float) -> None:
    """Return as soon as a write of ``target`` begins (its temporary appears, or it changes)."""
    before = _file_signature(target)
    pattern = f"{TEMP_PREFIX}{target.name}.*"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _file_signature(target) != before or any(job.paths.folder.glob(pattern)):
            return
        time.sleep(0.0005)


def audit_folder(folder: Path, audit: Audit) -> None:
    """Load every file of the job folder; record the ones that are not complete."""
    for path in sorted(folder.iterdir()):
        if path.name.startswith(TEMP_PREFIX):
            audit.leftover_temporaries += 1  # hidden, never read; removed at the next start
            continue
        audit.files_checked += 1
        try:
            if path.name.endswith(".pkl"):
                loaded = payload.load(path)
                if path.name.endswith("_submitted.pkl"):
                    audit.checkpoint_count = loaded.function.count
            elif path.name.endswith("_events.jsonl"):
                reader = EventReader(path)
                reader.read()
                complete = path.read_bytes().endswith(b"\n")
                if reader.bad_lines or not complete:
                    audit.corrupt.append(path.name)
            elif path.name.endswith(".json"):
                json.loads(path.read_text())
        except (PayloadError, ValueError):
            audit.corrupt.append(path.name)


def run_trial(folder: Path, rng: random.Random, modes: tuple[str, ...] = MODES) -> Audit:
    """One submit -> storm -> SIGKILL -> audit -> resubmit cycle."""
    mode = rng.choice(modes)
    audit = Audit(mode=mode, kill_after_s=round(rng.uniform(0.05, 1.5), 3))
    if mode != "full":
        return _trial(folder, rng, audit)
    with full_disk.small_filesystem(folder, FULL_DISK_BYTES):
        return _trial(folder / "jobs", rng, audit)


def _trial(folder: Path, rng: random.Random, audit: Audit) -> Audit:
    mode = audit.mode
    if mode == "result":
        audit.target = TARGET // 6
    executor = submitit.LocalExecutor(folder)
    job = executor.submit(Accumulator(), audit.target)
    assert isinstance(job, submitit.LocalJob)
    stop = threading.Event()
    storm = threading.Thread(
        target=_storm, args=(job, stop, random.Random(rng.random())), daemon=True
    )
    deadline = time.monotonic() + 10
    while not job.paths.local_process.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    if mode != "result":
        storm.start()
    filler = None
    if mode == "random":
        time.sleep(audit.kill_after_s)
    elif mode == "checkpoint":
        time.sleep(audit.kill_after_s / 3)
        _wait_for_write(job, job.paths.submitted_pickle, timeout=10)
    elif mode == "full":
        time.sleep(audit.kill_after_s / 2)
        filler = full_disk.fill(folder)
        _append_until_refused(job.paths.events)
        time.sleep(rng.uniform(0.0, audit.kill_after_s / 2))  # the job writes to a full disk
    else:
        _wait_for_write(job, job.paths.result_pickle, timeout=10)
    _kill_job(job)
    stop.set()
    if storm.is_alive():
        storm.join()
    if filler is not None:
        filler.unlink()  # room again: nothing written from now on may be lost
    job.wait(timeout=30)  # whoever looks at the dead job next sees it FAILED, and tidies up
    audit_folder(job.paths.folder, audit)
    if audit.corrupt:
        return audit
    audit.lost_events += _lost_appends(job.paths.events)
    # Requeue from the last complete checkpoint: it must resume, not start over.
    resumed = executor.submit_array([job.submission()])[0]
    try:
        result = resumed.result(timeout=120)
    except (submitit.UncompletedJobError, submitit.FailedJobError) as error:
        audit.resume_error = str(error)
        return audit
    audit.resumed_from = result["starts"][-1] if result["starts"] else None
    audit.resumed_ok = (
        result["count"] == audit.target and audit.resumed_from == audit.checkpoint_count
    )
    recorded = [e["event"] for e in resumed.events() if e["event"] in LIFECYCLE]
    audit.lost_events += len(LIFECYCLE) - len(recorded)
    return audit


def _append_until_refused(events: Path) -> None:
    """Record events, as another process of the job would, until the full disk refuses one:
    the last page's slack is used up, and the append that reaches its end is cut short."""
    for step in range(100_000):
        try:
            append_event(events, "audit", step=step, note="x" * 200)
        except OSError:
            return


def _lost_appends(events: Path) -> int:
    """Append an event to a log a killed job left behind: 1 if it cannot be read back whole."""
    probe = append_event(events, "audit", note="appended after the kill")
    read = EventReader(events).read()
    return 0 if read and read[-1] == probe else 1


def run_trials(root: Path, trials: int, seed: int = 0) -> list[Audit]:
    """Run ``trials`` trials, each in its own folder under ``root`` (``full`` ones need root:
    they mount a filesystem; without it the other three modes are drawn)."""
    rng = random.Random(seed)
    modes = MODES if full_disk.can_mount() else tuple(m for m in MODES if m != "full")
    return [run_trial(root / f"trial-{index:03d}", rng, modes) for index in range(trials)]
