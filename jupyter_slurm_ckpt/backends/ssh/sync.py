"""One job's part of a refresh: what the kernel asks (:func:`request_entry`), what the remote
side answers (:func:`describe`), and how the answer lands in the mirror (:func:`apply`).

The kernel says how much of each file its copy holds; the remote side answers the job's state
(as ``job.state`` tells it there: the folder first, then Slurm, politely) and the pieces the
copy lacks, in the answer's body: the events from where the copy ends (whole lines), the end of
each log that grew (at most :data:`LOG_CHUNK_BYTES`: the views show ends), a result file that
appeared (small ones; large ones are fetched when asked for). So a refresh of many jobs is one
round trip, whatever changed.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...core.job import Job
from .mirror import MirroredJob, log_name
from .protocol import Reader

EVENTS_CHUNK_BYTES = 4 * 1024 * 1024
LOG_CHUNK_BYTES = 64 * 1024
RESULT_INLINE_BYTES = 1024 * 1024


def request_entry(
    remote_folder: str, job_id: str, copy: MirroredJob, num_tasks: int
) -> dict[str, Any]:
    """What the kernel says of one job: where it is there, how far its copy goes here."""
    return {
        "folder": remote_folder,
        "id": job_id,
        "events": copy.events_size(),
        "logs": copy.log_ends(),
        "results": copy.results_held(num_tasks),
        "info": not copy.has_info(),
    }


# -- the remote side ----------------------------------------------------------------------------


def describe(
    job: Job[Any], state: str, entry: dict[str, Any]
) -> tuple[dict[str, Any], list[bytes]]:
    """The answer about one job (its state, what is new in its files) and the body pieces."""
    answer: dict[str, Any] = {
        "state": state,
        "done": job.done(),
        "pending_reason": job.pending_reason if state == "PENDING" else None,
        "scheduler_problem": job.scheduler_problem,
        "results": {},
        "stamps": {},
        "chunks": [],
    }
    if entry.get("info"):
        answer["info"] = asdict(job.info)
    pieces: list[bytes] = []

    def add(chunk: dict[str, Any], data: bytes) -> None:
        answer["chunks"].append({**chunk, "size": len(data)})
        pieces.append(data)

    start = int(entry.get("events", 0))
    events = _read(job.paths.events, start, EVENTS_CHUNK_BYTES)
    events = events[: events.rfind(b"\n") + 1]  # whole lines only
    if events:
        add({"kind": "events", "start": start}, events)
    ends = entry.get("logs") or {}
    held = entry.get("results") or {}
    if isinstance(held, list):  # a kernel of a version that did not stamp its copies
        held = {str(task): None for task in held}
    for task in range(job.num_tasks):
        paths = job.paths.for_task(task)
        for stream, path in (("out", paths.stdout), ("err", paths.stderr)):
            name = log_name(task, stream)
            size = _size(path)
            end = int(ends.get(name, 0))
            if size > end:
                begin = max(end, size - LOG_CHUNK_BYTES)
                add({"kind": "log", "name": name, "start": begin}, _read(path, begin, size - begin))
        size, stamp = _size_and_stamp(paths.result_pickle)
        if size:
            answer["results"][str(task)] = size
            answer["stamps"][str(task)] = stamp
            if held.get(str(task)) != stamp and size <= RESULT_INLINE_BYTES:
                add({"kind": "result", "task": task, "stamp": stamp},
                    paths.result_pickle.read_bytes())  # fmt: skip
    return answer, pieces


def _size(path: Path) -> int:
    return _size_and_stamp(path)[0]


def _size_and_stamp(path: Path) -> tuple[int, int]:
    """A file's size and modification time in ns (0, 0 when there is none)."""
    try:
        stat = path.stat()
    except OSError:
        return 0, 0
    return stat.st_size, stat.st_mtime_ns


def _read(path: Path, start: int, size: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.pread(fd, size, start)
    finally:
        os.close(fd)


# -- the kernel's side --------------------------------------------------------------------------


def apply(
    answer: dict[str, Any],
    reader: Reader,
    copy: MirroredJob | None,
    remote: dict[str, str],
    num_tasks: int,
) -> None:
    """Read one job's pieces from ``reader`` (always all of them: the next job's follow) and
    bring its copy (of a job of ``num_tasks`` tasks) up to date (none: read and dropped); a
    result copied from an earlier run is dropped once the cluster's differs."""
    chunks = answer.get("chunks") or []
    if copy is None:
        for chunk in chunks:
            reader.body(int(chunk["size"]), _drop)
        return
    with copy.locked() as update:
        if "info" in answer:
            update.info(answer["info"], remote)
        for chunk in chunks:
            data = reader.body_bytes(int(chunk["size"]))
            kind = chunk.get("kind")
            if kind == "events":
                update.events(int(chunk["start"]), data)
            elif kind == "log":
                update.log(str(chunk["name"]), int(chunk["start"]), data)
            elif kind == "result":
                update.result(int(chunk["task"]), data, chunk.get("stamp"))
        stamps = answer.get("stamps")
        if isinstance(stamps, dict):  # a cluster of a version that stamps its results
            update.drop_stale_results(stamps, num_tasks)


def _drop(_: memoryview) -> None:
    return None
