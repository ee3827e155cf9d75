"""Who answers for a local job: its process record and its lock, shared by the processes that
run it (controller, array launcher) and every process that re-attaches it (``LocalJob``).

``<id>_local.json`` names the process that answers for the job now (pid, start time, role:
``controller``, or ``launcher`` for an array as a whole) and, while the job waits in the local
queue, why (``waiting``: see ``slots``). An array element has no record of its own until its
controller starts: its array's launcher answers for it, in ``<array id>_local.json`` of the
array's first element's folder (see ``array_paths``: with a ``%j`` folder, one per element).
``<id>_local.lock`` is held by the job's processes while any lives (one controller per job; one
launcher per array).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

from ...core.events import read_events, summarize
from ...core.files import PRIVATE_FILE_MODE, atomic_write_text
from ...core.paths import JobPaths, resolve_folder
from .. import processes

#: What a duplicate controller says in the job's log before it leaves the job alone.
DUPLICATE_NOTE = "already has a controller: this duplicate launch leaves it alone"


def write_process_record(paths: JobPaths, role: str, waiting: str | None = None) -> None:
    """Record who answers for this job now (launcher or controller), and why it waits."""
    pid = os.getpid()
    record: dict[str, Any] = {"pid": pid, "start_time": processes.start_time(pid), "role": role}
    if waiting is not None:
        record["waiting"] = waiting
    atomic_write_text(paths.local_process, json.dumps(record))


def read_process_record(paths: JobPaths) -> dict[str, Any] | None:
    """The job's record, None when it has none (yet) or it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(paths.local_process.read_text())
        if isinstance(record, dict) and isinstance(record.get("pid"), int):
            return record
    return None


def array_paths(paths: JobPaths, folder_template: str | Path) -> JobPaths | None:
    """Where an array element's launcher keeps the array's record and lock: the array's id, in
    its first element's folder (``folder_template`` resolved for ``<array>_0``), one place for
    every element, so each finds the lock the launcher really holds; None for a job that is
    not an array element."""
    if paths.array_index is None:
        return None
    array_id = paths.job_id.partition("_")[0]
    mine = resolve_folder(folder_template, paths.job_id).parts
    first = resolve_folder(folder_template, f"{array_id}_0").parts
    # The placeholders resolve to the last parts of a folder; above them, the two folders are
    # one, taken from the element's folder as it is now (the tree may have moved since).
    same = next((i for i, (a, b) in enumerate(zip(mine, first)) if a != b), len(mine))
    folder = paths.folder
    for _ in range(len(mine) - same):
        folder = folder.parent
    return JobPaths(folder.joinpath(*first[same:]), array_id)


def lock(paths: JobPaths) -> int | None:
    """Lock ``paths.local_lock`` for this process (and the ones it forks); None when another
    process holds it. On a filesystem without locks, there is no guard, and it is taken."""
    fd = os.open(paths.local_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        pass
    return fd


def claim_job(paths: JobPaths) -> int | None:
    """Lock the job for this process before it writes anything about the job.

    Returns the lock's descriptor, to keep open while the job runs (forked processes inherit
    it, so the lock lives as long as any of them), or None when this process must leave the
    job alone: another controller holds it (a launch was duplicated, e.g. by an agent that
    answered too late), or it has run or been cancelled already.
    """
    fd = lock(paths)
    if fd is None:
        print(f"jupyter_slurm_ckpt: job {paths.job_id} {DUPLICATE_NOTE}", file=sys.stderr)
        return None
    summary = summarize(read_events(paths.events))
    if summary.runs or summary.terminal is not None:
        os.close(fd)
        if summary.terminal is None or summary.terminal["event"] != "cancelled":
            print(f"jupyter_slurm_ckpt: job {paths.job_id} has run already: not run again",
                  file=sys.stderr)
        return None
    return fd


def cancelled(paths: JobPaths) -> bool:
    """Whether the job's end is recorded already (cancelled while it waited, say)."""
    return summarize(read_events(paths.events)).terminal is not None
