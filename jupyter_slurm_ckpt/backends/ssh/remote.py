"""The remote side: ``python -m jupyter_slurm_ckpt.backends.ssh.remote`` on the cluster.

Started by the kernel through one SSH session, it says who it is (``hello``: versions, home,
host), then answers requests one at a time until its stdin ends, with this package's own
objects on the cluster: ``SlurmExecutor`` submits, ``Job`` (re-attached from its folder and id)
tells states and acts, exactly as they do for a kernel that runs on the cluster. It lives as
long as its session, so the jobs it has seen keep their Slurm records and event readers from
one request to the next (one ``sacct`` for many jobs, politely, as in a local kernel).

Requests (``op``), each one round trip:

- ``status``: the state of every job listed and what the kernel's copies lack (``sync``);
- ``submit``: the payloads, streamed in the body (sizes in the header), submitted as one job
  or one array; a payload cut short (the connection dropped) ends this process before anything
  is submitted, and its unnamed temporary files vanish with it;
- ``fetch``: a result file or the current payload, streamed; ``log``: a log, or its end;
- ``interrupt``, ``cancel``, ``resubmit``: the ``Job`` methods of the widget's buttons;
- ``list``: the jobs under a folder (``core.discovery``).

Its stdout carries only messages: the process's own fd 1 goes to stderr (a stray ``print``
cannot break a message), and fd 0 reads nothing (commands it runs never see the requests).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...core import array_payload, payload, registry
from ...core.catalog import job_ids_in
from ...core.discovery import walk_job_folders
from ...core.executor import Executor
from ...core.files import atomic_write_text, ensure_private_folder
from ...core.job import Job
from ...core.paths import PackagePaths, template_root
from ...core.states import poll_all
from ..slurm.records import PollPolicy
from ..slurm.state import STATES
from .hello import hello
from .protocol import Reader, Writer, error_answer
from .sync import describe

Answer = tuple[dict[str, Any], list[Any]]


class Body:
    """The body of the request being answered: read by its handler, the rest skipped after."""

    def __init__(self, reader: Reader, size: int) -> None:
        self.reader = reader
        self.left = size

    def read_into(self, size: int, sink: Callable[[memoryview], Any]) -> None:
        if size > self.left:
            raise ValueError(f"the request's body holds {self.left} more bytes, not {size}")
        self.reader.body(size, sink)
        self.left -= size

    def skip(self) -> None:
        if self.left:
            self.reader.body(self.left, lambda _: None)
            self.left = 0


class Service:
    """The requests' handlers, and the jobs seen so far (by folder, id and read-only mode)."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str, bool], Job[Any]] = {}
        self._open_files: list[int] = []  # files being sent with the current answer
        self._executors: dict[str, Executor] = {}

    def job(self, request: dict[str, Any]) -> Job[Any]:
        """The job a request names (``folder``, ``id``; ``read_only`` for the Jupyter server)."""
        folder = os.path.expanduser(str(request["folder"]))
        read_only = bool(request.get("read_only"))
        key = (folder, str(request["id"]), read_only)
        job = self._jobs.get(key)
        if job is None:
            job = Job(folder, key[1])
            job.read_only = read_only
            self._jobs[key] = job
        return job

    # -- reading --------------------------------------------------------------------------------

    def status(self, request: dict[str, Any], body: Body) -> Answer:
        policy = request.get("policy")
        if isinstance(policy, dict):
            STATES.policy = replace(
                STATES.policy, **{k: float(v) for k, v in policy.items() if k in _POLICY}
            )
        entries = list(request.get("jobs") or [])
        answers: list[dict[str, Any]] = []
        pieces: list[Any] = []
        jobs: list[Job[Any] | None] = []
        for entry in entries:
            try:
                jobs.append(self.job(entry))
            except Exception as error:
                jobs.append(None)
                answers.append({"error": f"{type(error).__name__}: {error}"})
        states = poll_all([job for job in jobs if job is not None])
        found = iter(answers)
        result: list[dict[str, Any]] = []
        for job, entry in zip(jobs, entries):
            if job is None:
                result.append(next(found))
                continue
            answer, parts = self._describe(job, states.get(job.key), entry)
            result.append(answer)
            pieces += parts
        return {"ok": True, "jobs": result}, pieces

    def _describe(self, job: Job[Any], state: str | None, entry: dict[str, Any]) -> Answer:
        try:
            return describe(job, job.state if state is None else state, entry)
        except Exception as error:  # one broken job must not hide the others
            return {"error": f"{type(error).__name__}: {error}"}, []

    def fetch(self, request: dict[str, Any], body: Body) -> Answer:
        job = self.job(request)
        kind = request.get("file")
        if kind == "result":
            path = job.paths.for_task(int(request.get("task", 0))).result_pickle
        elif kind == "submitted":
            path = job.paths.submitted_pickle
        else:
            raise ValueError(f"no file {kind!r} to fetch (result or submitted)")
        fd = os.open(path, os.O_RDONLY)
        self._open_files.append(fd)
        stat = os.fstat(fd)
        size = stat.st_size
        answer = {"ok": True, "body": size, "stamp": stat.st_mtime_ns}
        return answer, [lambda writer: writer.send_file_range(fd, 0, size)]

    def log(self, request: dict[str, Any], body: Body) -> Answer:
        job = self.job(request)
        paths = job.paths.for_task(int(request.get("task", 0)))
        path = paths.stdout if request.get("stream", "out") == "out" else paths.stderr
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {"ok": True, "exists": False}, []
        tail = request.get("tail")
        if tail is not None:
            data = data[-int(tail) :]
        return {"ok": True, "exists": True, "body": len(data)}, [data]

    def list_jobs(self, request: dict[str, Any], body: Body) -> Answer:
        root = Path(os.path.expanduser(str(request["folder"]))).absolute()
        depth = int(request.get("depth", 1))
        folders = walk_job_folders([root], depth, int(request.get("max_folders", 20000))).folders
        found = []
        for folder in folders:
            for job_id in job_ids_in(folder):
                with contextlib.suppress(OSError):
                    mtime = (folder / f"{job_id}_job.json").stat().st_mtime
                    found.append({"folder": str(folder), "id": job_id, "mtime": mtime})
        return {"ok": True, "folder": str(root), "jobs": found}, []

    # -- acting ---------------------------------------------------------------------------------

    def submit(self, request: dict[str, Any], body: Body) -> Answer:
        folder = os.path.expanduser(str(request["folder"]))
        root = template_root(folder)
        received: list[payload.Pickled] = []
        sizes = [int(size) for size in request.get("sizes") or []]
        try:  # the whole body first: nothing is half-read
            if request.get("shared") is not None:  # an array's payloads: the file they share
                shared = int(request["shared"])
                received += array_payload.received_array(
                    root, sizes, lambda write: body.read_into(shared, write)
                )
            else:
                for size in sizes:
                    item = payload.Pickled(None, root)
                    received.append(item)
                    body.read_into(size, item.write)
            executor = self._executor(folder, request)
            for source in request.get("sources") or []:
                _write_source(root, source)
            jobs = executor.submit_pickled(received, array=bool(request.get("array")))
        finally:
            for item in received:
                item.discard()
        return self._answer_with(jobs, request, {"ok": True, "ids": [j.job_id for j in jobs]})

    def _executor(self, folder: str, request: dict[str, Any]) -> Executor:
        """The executor of a submission: made once per folder and settings, then reused."""
        cluster = str(request.get("cluster", "slurm"))
        timeouts = int(request.get("max_num_timeout", 3))
        size_gb = float(request.get("max_pickle_size_gb", 1.0))
        parameters = dict(request.get("parameters") or {})
        key = json.dumps([folder, cluster, timeouts, size_gb, parameters], sort_keys=True)
        executor = self._executors.get(key)
        if executor is None:
            executor = registry.executor_class(cluster)(
                folder, max_num_timeout=timeouts, max_pickle_size_gb=size_gb
            )
            executor.update_parameters(**parameters)
            self._executors[key] = executor
        return executor

    def _answer_with(
        self, jobs: list[Job[Any]], request: dict[str, Any], header: dict[str, Any]
    ) -> Answer:
        """``header`` with each job's description and state (``jobs``: one answer each)."""
        states = poll_all(jobs)
        answers, pieces = [], []
        for job in jobs:
            self._jobs[(str(job.paths.folder), job.job_id, False)] = job
            entry = {"events": 0, "info": True, "read_only": bool(request.get("read_only"))}
            answer, parts = self._describe(job, states.get(job.key), entry)
            answers.append({**answer, "folder": str(job.paths.folder), "id": job.job_id})
            pieces += parts
        return {**header, "jobs": answers}, pieces

    def interrupt(self, request: dict[str, Any], body: Body) -> Answer:
        job = self.job(request)
        job._interrupt(timeout=bool(request.get("timeout")))
        return self._answer_with([job], {}, {"ok": True})

    def cancel(self, request: dict[str, Any], body: Body) -> Answer:
        job = self.job(request)
        cancelled = job.cancel(check=True)
        return self._answer_with([job], {}, {"ok": True, "cancelled": cancelled})

    def resubmit(self, request: dict[str, Any], body: Body) -> Answer:
        again = self.job(request).resubmit_once()
        return self._answer_with([again.job], {}, {"ok": True, "created": again.created})

    # -- the loop -------------------------------------------------------------------------------

    def handle(self, request: dict[str, Any], body: Body) -> Answer:
        handler = self._handlers().get(str(request.get("op")))
        if handler is None:
            raise ValueError(f"unknown request {request.get('op')!r}")
        return handler(request, body)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any], Body], Answer]]:
        return {
            "status": self.status,
            "submit": self.submit,
            "fetch": self.fetch,
            "log": self.log,
            "list": self.list_jobs,
            "interrupt": self.interrupt,
            "cancel": self.cancel,
            "resubmit": self.resubmit,
        }

    def serve(self, reader: Reader, writer: Writer) -> None:
        """Answer requests until the kernel closes the session."""
        writer.message(hello())
        while True:
            try:
                request = reader.header()
            except EOFError:
                return
            body = Body(reader, int(request.get("body", 0)))
            self._open_files = []
            try:
                header, parts = self.handle(request, body)
            except EOFError:
                raise  # the upload was cut short: nothing is submitted, the process ends
            except Exception as error:
                header, parts = error_answer(error), []
            body.skip()
            header["body"] = sum(_size(part) for part in parts) if "body" not in header else (
                header["body"]
            )
            try:
                writer.message(header, parts)
            finally:
                for fd in self._open_files:
                    os.close(fd)


_POLICY = {field for field in PollPolicy.__dataclass_fields__ if field.endswith("_s")}


def _size(part: Any) -> int:
    return memoryview(part).nbytes if not callable(part) else 0


def _write_source(root: Path, source: dict[str, Any]) -> None:
    """A cell's source file (``cells/cell_<hash>.py``), for the jobs' tracebacks."""
    name = Path(str(source["name"])).name
    if not (name.startswith("cell_") and name.endswith(".py")):
        raise ValueError(f"{name!r} is not a cell file")
    folder = ensure_private_folder(PackagePaths(root).cells)
    target = folder / name
    if not target.exists():
        atomic_write_text(target, str(source["text"]))


@contextlib.contextmanager
def _protocol_streams() -> Iterator[tuple[int, int]]:
    """The process's stdin and stdout for messages only; fd 0 and 1 point elsewhere."""
    messages_in, messages_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield messages_in, messages_out
    finally:
        os.close(messages_in)
        os.close(messages_out)


#: The exit status when a request's body was cut short (the kernel's connection broke).
CUT_SHORT = 3


def main() -> None:
    """Serve the kernel at the other end of stdin and stdout."""
    os.umask(0o077)
    with _protocol_streams() as (messages_in, messages_out):
        try:
            Service().serve(Reader(messages_in), Writer(messages_out))
        except EOFError:
            print("the connection ended within a request: nothing of it was done", file=sys.stderr)
            sys.exit(CUT_SHORT)


if __name__ == "__main__":
    main()
