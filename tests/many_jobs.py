"""A job folder of thousands of ended jobs, written in seconds, for tests and benchmarks.

Running 10,000 real jobs to get such a folder takes hours; their files are what every reader
sees, so they are written here with the package's own writers (``JobInfo.write``,
``append_event``, ``payload.dump``), as the executor and the worker write them: the
description, the payload, the events of a run that ended (completed, failed, timed out after
a requeue, cancelled while pending), the result file and the logs. Only the clock is made up:
the jobs are spread over past days (``submitted_at``, event times and the marker file's
mtime agree). Jobs that really run are submitted by the caller, beside these.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jupyter_slurm_ckpt.core.events import append_event
from jupyter_slurm_ckpt.core.files import atomic_write_text, ensure_private_folder
from jupyter_slurm_ckpt.core.helpers import DelayedSubmission
from jupyter_slurm_ckpt.core.info import JobInfo
from jupyter_slurm_ckpt.core.paths import JobPaths, PackagePaths
from jupyter_slurm_ckpt.core.payload import dump, serialize

NAMES = ("train", "evaluate", "sweep", "preprocess", "finetune")
#: How each ended job ended, and how often (out of 20). LOST: its processes were all killed
#: (SIGKILL, the OOM killer) while it ran: nothing recorded its end.
ENDINGS = ("COMPLETED",) * 14 + ("FAILED",) * 3 + ("TIMEOUT", "CANCELLED", "REQUEUED_COMPLETED")
DAY_S = 86400.0
#: A pid, and with start time 1 a process, that does not exist.
GONE_PID = 2**22 - 1


@dataclass(frozen=True)
class Built:
    """What :func:`build_ended_jobs` wrote: ids by how they ended, and the time span."""

    ids: dict[str, list[str]]
    oldest: float
    newest: float

    @property
    def count(self) -> int:
        """How many jobs were written."""
        return sum(len(ids) for ids in self.ids.values())


def build_ended_jobs(
    folder: Path,
    count: int,
    *,
    array_size: int = 100,
    arrays: int = 0,
    days: float = 30.0,
    now: float,
    lost: float = 0.0,
    seed: int = 26,
) -> Built:
    """Write ``count`` ended local jobs into ``folder``: ``arrays`` arrays of ``array_size``
    elements (``L<n>_<i>``) and single jobs (``L<n>``) for the rest, submitted over the
    ``days`` before ``now``, newest last, with the ids a real local executor would give them.
    A ``lost`` fraction of them was killed without a word while running: their controller's
    record names a process that is gone, and no end is recorded (the ids under "LOST").

    The job counter is left at the last id, so that jobs submitted afterwards get new ids.
    """
    ensure_private_folder(folder)
    rng = random.Random(seed)
    payload = serialize(DelayedSubmission(pow, 2, 10))
    ids: dict[str, list[str]] = {}
    groups = list(_groups(count, arrays, array_size, rng))
    start = now - days * DAY_S
    # The newest submission is 3 hours old: every job (at most 2 hours long) ended before now.
    step = (now - 3 * 3600.0 - start) / max(len(groups), 1)
    for number, size in enumerate(groups, start=1):
        submitted_at = start + number * step
        name = rng.choice(NAMES)
        for index in range(max(size, 1)):
            job_id = f"L{number}" if size == 0 else f"L{number}_{index}"
            ending = "LOST" if rng.random() < lost else rng.choice(ENDINGS)
            _write_job(JobPaths(folder, job_id), name, ending, submitted_at, payload, size, rng)
            ids.setdefault(ending, []).append(job_id)
    counter = PackagePaths(folder).job_counter("local")
    counter.write_text(f"{len(groups):012d}")
    return Built(ids, start + step, start + len(groups) * step)


def _groups(count: int, arrays: int, array_size: int, rng: random.Random) -> Iterator[int]:
    """Sizes of the submissions in order: 0 for a single job, else an array's size."""
    singles = count - arrays * array_size
    if singles < 0:
        raise ValueError(f"{arrays} arrays of {array_size} are more than {count} jobs")
    kinds = [0] * singles + [array_size] * arrays
    rng.shuffle(kinds)
    yield from kinds


def _write_job(
    paths: JobPaths,
    name: str,
    ending: str,
    submitted_at: float,
    payload: bytes,
    array_size: int,
    rng: random.Random,
) -> None:
    info = JobInfo(
        job_id=paths.job_id,
        cluster="local",
        folder=str(paths.folder),
        name=name,
        timeout_min=60.0,
        signal_delay_s=30.0,
        parameters={"name": name, "timeout_min": 60.0},
        submitted_at=submitted_at,
    )
    info.write(paths.info)
    os.utime(paths.info, (submitted_at, submitted_at))
    paths.submitted_pickle.write_bytes(payload)
    fields = {"cluster": "local", "name": name, "bytes": len(payload)}
    if array_size:
        fields["array_size"] = array_size
    events = paths.events
    append_event(events, "submitted", t=submitted_at, **fields)
    if ending == "CANCELLED":  # cancelled while it waited: it never ran
        append_event(events, "cancelled", t=submitted_at + 5.0, by="user")
        return
    t = submitted_at + rng.uniform(0.5, 30.0)
    node = {"node": "localhost", "pid": rng.randrange(1000, 60000)}
    append_event(events, "started", t=t, run=0, **node)
    if ending in ("TIMEOUT", "REQUEUED_COMPLETED"):
        t += rng.uniform(60.0, 3000.0)
        reason = "timeout" if ending == "TIMEOUT" else "preemption"
        append_event(events, "signal", t=t, reason=reason)
        append_event(events, "checkpoint", t=t + 0.4, seconds=0.4, write_s=0.1, requeue=True)
        append_event(events, "requeued", t=t + 0.5, run=1, timeouts_left=2)
        append_event(events, "started", t=t + 1.0, run=1, **node)
    t += rng.uniform(1.0, 3000.0)
    if ending == "LOST":  # as its controller recorded itself; pid and start match no process
        record = {"pid": GONE_PID, "start_time": 1, "role": "controller"}
        atomic_write_text(paths.local_process, json.dumps(record))
        return
    with open(paths.stdout, "w") as out:
        out.write(f"{name} {paths.job_id}: step 1\n{name} {paths.job_id}: done\n")
    paths.stderr.touch()
    if ending == "TIMEOUT":
        reason = "killed at the time limit (timeout)"
        append_event(events, "failed", t=t, state="TIMEOUT", reason=reason)
    elif ending == "FAILED":
        trace = "Traceback (most recent call last):\nValueError: diverged"
        dump(("error", trace), paths.result_pickle, durable=False)
        append_event(events, "failed", t=t, reason="ValueError: diverged", task=0)
    else:
        dump(("success", 1024), paths.result_pickle, durable=False)
        append_event(events, "completed", t=t, task=0)
