"""The local queue: how many local jobs of a user run at once on this machine, as Slurm would.

A running local job holds one *slot*: a lock (``flock``) on one of the files ``slot-0``,
``slot-1``... of the user's private folder (beside the agent's sockets). Its controller takes
it before the first run and keeps it to the end; the job's processes inherit it, and the
kernel releases it when the last of them exits, however it ends (a SIGKILL, an OOM kill), so no
slot is ever leaked. A job may take one of the first ``slots`` files: its own limit, the
``slots`` parameter (``local_slots`` of ``AutoExecutor``, ``SlurmMagics.local_slots``), by
default :func:`default_slots`: as many jobs as the machine's CPUs hold, and its memory when the
job says how much it takes (``mem_gb``).

Jobs that find every slot taken wait PENDING, in the order they asked: the waiter at the head
of the queue holds the queue's lock (the others sleep on it in the kernel: a waiting job costs
no CPU) and looks for a free slot, and for the memory the job needs, until it finds both (it
waits for memory only while jobs of the queue run: theirs is the memory waiting can free).
Jobs of different limits queue apart (one queue per limit), so that a job allowed fewer slots
never holds back one that may take a slot it may not. An array's launcher keeps its place at
the head while it starts its elements one after another (as Slurm runs an array's tasks before
later jobs of the same priority), and leaves it while its own ``array_parallelism`` holds it
back.

Why a job waits is written where ``LocalJob.pending_reason`` reads it, in Slurm's words:
``Priority`` (other jobs come first), ``LocalSlot`` (every slot it may take is taken),
``LocalMemory`` (not enough free memory) and ``JobArrayTaskLimit`` (the array's
``array_parallelism``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...core.files import PRIVATE_FILE_MODE
from ...core.paths import PackagePaths
from .agent_client import agent_folder

GIB = 1024**3
#: The memory a job is assumed to need when it does not say (``mem_gb``): it starts only while
#: this much is free, so that a flood of jobs stops short of the OOM killer.
DEFAULT_JOB_MEMORY = 256 * 1024**2
#: The share of the machine's memory that jobs which say their need may take together.
MEMORY_SHARE = 0.9
_FIRST_LOOK_S = 0.002
_MAX_LOOK_S = 0.05

#: Pending reasons (Slurm's names; ``views.text`` says what each means).
WAITING_FOR_TURN = "Priority"
WAITING_FOR_SLOT = "LocalSlot"
WAITING_FOR_MEMORY = "LocalMemory"
WAITING_FOR_ARRAY = "JobArrayTaskLimit"


def machine_memory() -> tuple[int, int]:
    """(total, available) memory of this machine in bytes (``/proc/meminfo``)."""
    fields: dict[str, int] = {}
    with open("/proc/meminfo") as stream:
        for line in stream:
            name, _, value = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                fields[name] = int(value.split()[0]) * 1024
    total = fields.get("MemTotal", 0)
    return total, fields.get("MemAvailable", total)


def job_memory(parameters: Mapping[str, Any]) -> int:
    """The memory a job needs to start, in bytes: its ``mem_gb`` (at most what jobs may take
    of this machine), else :data:`DEFAULT_JOB_MEMORY`."""
    mem_gb = parameters.get("mem_gb")
    if not mem_gb:
        return DEFAULT_JOB_MEMORY
    return int(min(float(mem_gb) * GIB, machine_memory()[0] * MEMORY_SHARE))


def default_slots(parameters: Mapping[str, Any], num_tasks: int = 1) -> int:
    """How many jobs like this one the machine holds at once: its CPUs (of this process's
    affinity) over the job's (``cpus_per_task`` per task), and, when the job says its memory
    (``mem_gb``), the machine's memory over it. At least 1."""
    cpus = len(os.sched_getaffinity(0))
    per_job = max(1, int(parameters.get("cpus_per_task") or 1) * max(1, num_tasks))
    slots = max(1, cpus // per_job)
    if parameters.get("mem_gb"):
        usable = machine_memory()[0] * MEMORY_SHARE
        slots = min(slots, max(1, int(usable // job_memory(parameters))))
    return slots


def job_slots(parameters: Mapping[str, Any], num_tasks: int = 1) -> int:
    """The job's limit: its ``slots`` parameter, else :func:`default_slots`."""
    given = parameters.get("slots")
    return int(given) if given else default_slots(parameters, num_tasks)


class SlotQueue:
    """The user's queue of local jobs on this machine (see the module docstring).

    Parameters
    ----------
    folder
        Where the slot files live (default: the user's private agent folder).
    """

    def __init__(self, folder: Path | None = None) -> None:
        base = PackagePaths.slot_folder(folder or agent_folder())
        with contextlib.suppress(FileExistsError):
            os.mkdir(base, 0o700)
        self.folder = base
        self._turn: int | None = None

    @contextlib.contextmanager
    def turn(self, limit: int, say: Callable[[str], None]) -> Iterator[None]:
        """Hold the head of the queue of jobs allowed ``limit`` slots inside the block (waiting
        for it first, in order)."""
        self.enter(limit, say)
        try:
            yield
        finally:
            self.leave()

    def enter(self, limit: int, say: Callable[[str], None]) -> None:
        """Wait for the head of the queue of jobs allowed ``limit`` slots (says
        :data:`WAITING_FOR_TURN` if it must wait)."""
        if self._turn is not None:
            return
        fd = os.open(self.folder / f"queue-{limit}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(WAITING_FOR_TURN)
            fcntl.flock(fd, fcntl.LOCK_EX)  # asleep in the kernel until the head leaves
        except BaseException:
            os.close(fd)
            raise
        self._turn = fd

    def leave(self) -> None:
        """Give the head of the queue to the next waiter. In a forked child, only drop the
        inherited descriptor (the parent keeps its place: a lock goes with its last copy)."""
        if self._turn is not None:
            os.close(self._turn)
            self._turn = None

    def take(self, limit: int, memory: int, say: Callable[[str], None]) -> int:
        """Wait (at the head of the queue) for a free slot among the first ``limit`` and
        ``memory`` bytes free; returns the slot's locked descriptor, to keep while the job
        runs. Says :data:`WAITING_FOR_SLOT` or :data:`WAITING_FOR_MEMORY` when it waits."""
        assert self._turn is not None, "take() is for the head of the queue"
        delay = _FIRST_LOOK_S
        said = None
        while True:
            reason = WAITING_FOR_MEMORY
            # Waiting for memory helps only while jobs of ours hold some: with none running,
            # what is missing is not ours to free, and the job starts.
            if machine_memory()[1] >= memory or self.in_use() == 0:
                reason = WAITING_FOR_SLOT
                for index in range(max(1, limit)):
                    slot = self._try_slot(index)
                    if slot is not None:
                        return slot
            if reason != said:
                say(reason)
                said = reason
            time.sleep(delay)
            delay = min(delay * 2, _MAX_LOOK_S)

    def in_use(self) -> int:
        """How many slots local jobs hold now."""
        taken = 0
        for path in self.folder.glob("slot-*"):
            slot = self._try_slot(int(path.name.partition("-")[2]))
            if slot is None:
                taken += 1
            else:
                os.close(slot)
        return taken

    def _try_slot(self, index: int) -> int | None:
        fd = os.open(self.folder / f"slot-{index}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd
