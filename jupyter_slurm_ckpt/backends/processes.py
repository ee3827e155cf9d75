"""Process facts from ``/proc``: liveness that survives pid reuse, and process trees."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None if it does not exist)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def parent_of(pid: int) -> int | None:
    """The pid of the process's parent (None if it does not exist)."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def started_at(pid: int) -> float | None:
    """The process's start as unix time (None if it does not exist)."""
    ticks = start_time(pid)
    if ticks is None:
        return None
    with open("/proc/stat") as stream:
        boot = next(int(line.split()[1]) for line in stream if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def is_alive(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if ``started`` is given, is that same process."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def in_process_group(group: int, table: ProcessTable | None = None) -> list[int]:
    """The live processes of process group ``group`` (zombies excluded); from ``table`` when
    given (one look at ``/proc`` for many jobs)."""
    if table is not None:
        return table.group(group)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[2]) == group and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


_PR_SET_PDEATHSIG = 1


def run_child(work: Callable[[], int]) -> NoReturn:
    """In a forked child: run ``work``, then leave with its exit code (1 when it raised, after
    printing the traceback), stdio flushed; never return into the parent's code."""
    code = 1
    try:
        code = work()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent ``parent`` dies (Linux prctl).

    Call it right after ``fork`` in the child: if the parent died before the call, this
    process exits at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` in the process tree, children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def environ_of(pid: int) -> dict[str, str] | None:
    """The environment process ``pid`` started with (``/proc/<pid>/environ``); None when it
    cannot be read (the process is gone, or another user's)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def processes_with_env(wanted: Mapping[str, str], table: ProcessTable | None = None) -> list[int]:
    """Our user's processes whose environment has every ``name=value`` of ``wanted`` (the
    escapees of a process group that still carry their job's variables); from ``table``
    when given."""
    environs = table.environs() if table is not None else _environs()
    return [
        pid
        for pid, environ in environs.items()
        if all(environ.get(k) == v for k, v in wanted.items())
    ]


def _environs() -> dict[int, dict[str, str]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            environ = environ_of(int(entry))
            if environ is not None:
                found[int(entry)] = environ
    return found


class ProcessTable:
    """One look at ``/proc`` for many questions: the process groups, and the environments,
    each read on first use. A job whose controller is gone is looked for in it: its processes
    existed before, so a table read after that is not too old for it."""

    def __init__(self) -> None:
        self._groups: dict[int, list[int]] | None = None
        self._environs: dict[int, dict[str, str]] | None = None

    def group(self, group: int) -> list[int]:
        """The live processes of process group ``group``."""
        if self._groups is None:
            self._groups = {}
            for entry in os.listdir("/proc"):
                fields = _stat_fields(int(entry)) if entry.isdigit() else None
                if fields and fields[0] not in ("Z", "X"):
                    self._groups.setdefault(int(fields[2]), []).append(int(entry))
        return list(self._groups.get(group, []))

    def environs(self) -> dict[int, dict[str, str]]:
        """The environment of every process of ours but this one, by pid."""
        if self._environs is None:
            self._environs = _environs()
        return self._environs


def signal_all(pids: list[int], signum: int) -> None:
    """Send ``signum`` to each pid, ignoring those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def terminate(pids: list[int], grace_s: float) -> None:
    """SIGTERM, then SIGKILL whatever still lives after ``grace_s`` seconds."""
    signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(pid) for pid in pids):
        time.sleep(0.01)
    signal_all([pid for pid in pids if is_alive(pid)], signal.SIGKILL)
