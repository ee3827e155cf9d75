"""The launcher of a local job array: one process that starts the array's elements in turn.

It answers for the elements that wait (``record``: one record for the array, however many
elements it has), and starts each one by forking its controller once the element may run:
fewer than ``array_parallelism`` of the array run, and the local queue (``slots``) gives it a
slot. A cancelled element is skipped. A second launcher of the same array (a duplicated launch)
leaves it alone: the array's lock is held by the first.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from ...core.info import JobInfo
from ...core.paths import JobPaths, resolve_folder
from .. import processes
from . import records
from .slots import WAITING_FOR_ARRAY, SlotQueue, job_memory, job_slots

#: Runs one element's job in the forked child: (its paths, its lock, its slot) -> exit code.
RunJob = Callable[[JobPaths, int, int | None], int]


class ArrayLauncher:
    """Starts the elements of one array (see the module docstring)."""

    def __init__(self, folder: str, parallelism: int, job_ids: list[str], run: RunJob) -> None:
        self.elements = [JobPaths(resolve_folder(folder, job_id), job_id) for job_id in job_ids]
        #: The array's record and lock (see ``records.array_paths``), None for no element.
        self.record = records.array_paths(self.elements[0], folder) if self.elements else None
        self.parallelism = max(1, parallelism)
        self.run_job = run
        self.running: set[int] = set()
        self.waiting: str | None = None
        self.array_lock: int | None = None  # held while this launcher lives
        self.queue: SlotQueue | None = None
        with contextlib.suppress(Exception):  # no private folder for it: no queue, as before
            self.queue = SlotQueue()

    def say(self, reason: str | None, always: bool = False) -> None:
        """Record why the array's waiting elements wait (when that changes)."""
        if reason != self.waiting or always:
            self.waiting = reason
            if self.record is not None:
                records.write_process_record(self.record, "launcher", waiting=reason)

    def launch(self) -> None:
        """Start every element, in order; return once all of them have ended."""
        info = JobInfo.read(self.elements[0].info)
        limit = job_slots(info.parameters, info.num_tasks)
        memory = job_memory(info.parameters)
        try:
            for paths in self.elements:
                self._wait_for_room()
                lock = _claim(paths)
                if lock is None:
                    continue  # cancelled while pending, or run by another launch
                self._start(paths, lock, limit, memory)
        finally:
            if self.queue is not None:
                self.queue.leave()
        while self.running:
            self._reap(block=True)

    def _wait_for_room(self) -> None:
        """Until fewer than ``parallelism`` elements of the array run (leaving the head of
        the local queue meanwhile: jobs behind it may use the free slots)."""
        self._reap(block=False)
        while len(self.running) >= self.parallelism:
            if self.queue is not None:
                self.queue.leave()
            self.say(WAITING_FOR_ARRAY)
            self._reap(block=True)

    def _start(self, paths: JobPaths, lock: int, limit: int, memory: int) -> None:
        slot = None
        try:
            if self.queue is not None:
                self.queue.enter(limit, self.say)
                slot = self.queue.take(limit, memory, self.say)
            if records.cancelled(paths):
                return  # cancelled while it waited for its slot
            pid = os.fork()
            if pid == 0:
                processes.run_child(lambda: self._run_in_child(paths, lock, slot))
            self.running.add(pid)
        finally:
            os.close(lock)  # the element's controller holds the job's lock and slot now
            if slot is not None:
                os.close(slot)

    def _run_in_child(self, paths: JobPaths, lock: int, slot: int | None) -> int:
        os.setsid()
        if self.array_lock is not None:  # the controller must not keep the array's lock
            os.close(self.array_lock)
        if self.queue is not None:
            self.queue.leave()  # the launcher keeps its place in the queue, not the child
        return self.run_job(paths, lock, slot)

    def _reap(self, block: bool) -> None:
        while self.running:
            try:
                pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.running.clear()
                return
            if pid == 0:
                return
            self.running.discard(pid)
            if block:
                return


def _claim(paths: JobPaths) -> int | None:
    """``records.claim_job``, or None when the element's files are gone (its folder removed
    while it waited): the launcher says so and goes on with the next element."""
    try:
        return records.claim_job(paths)
    except FileNotFoundError:
        print(f"jupyter_slurm_ckpt: job {paths.job_id}'s folder {paths.folder} is gone: "
              "it is not run", file=sys.stderr)
        return None


def launch_array(folder: str, parallelism: int, job_ids: list[str], run: RunJob) -> None:
    """Start the elements ``job_ids`` of one array (at most ``parallelism`` at a time), unless
    another launcher has the array already."""
    launcher = ArrayLauncher(folder, parallelism, job_ids, run)
    if launcher.record is None:
        return
    launcher.array_lock = records.lock(launcher.record)
    if launcher.array_lock is None:
        print(f"jupyter_slurm_ckpt: array {launcher.record.job_id} has a launcher already: "
              "this duplicate launch leaves it alone", file=sys.stderr)
        return
    try:
        launcher.say(None, always=True)
        launcher.launch()
    finally:
        os.close(launcher.array_lock)
