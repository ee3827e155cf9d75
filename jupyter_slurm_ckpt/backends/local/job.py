"""``LocalJob``: a job of the local backend, seen from any process of this machine.

Its controller (see ``controller``) records its pid and start time in ``<id>_local.json``: any
process re-attaches the job from its folder and id, tells whether it lives (pid reuse aside),
interrupts it (SIGUSR1 to the controller) and cancels its whole process tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...core.environment import ENV_FOLDER, ENV_JOB_ID
from ...core.events import append_event, read_events, summarize
from ...core.files import (
    TEMP_PREFIX,
    WriteError,
    atomic_write_text,
    exclusive_lock,
    temporary_names,
)
from ...core.job import Job
from ...core.paths import JobKey, JobPaths
from .. import processes
from . import records

_CANCEL_GRACE_S = 1.0


class _Look:
    """One look at this machine for a poll of many local jobs: the processes (``/proc``) and
    each job folder's temporaries, each read once (a folder may hold thousands of jobs)."""

    def __init__(self) -> None:
        self.processes = processes.ProcessTable()
        self._temporaries: dict[Path, list[str]] = {}

    def temporaries(self, folder: Path, job_id: str) -> list[Path]:
        """The temporaries of job ``job_id`` in ``folder`` (see ``remove_stale_temp_files``)."""
        names = self._temporaries.get(folder)
        if names is None:
            names = self._temporaries[folder] = temporary_names(folder)
        prefix = f"{TEMP_PREFIX}{job_id}_"
        return [folder / name for name in names if name.startswith(prefix)]


class LocalJob(Job[Any]):
    """A job run by the local backend. ``LocalJob(folder, job_id)`` re-attaches to it."""

    cluster: ClassVar[str] = "local"

    def __init__(self, folder: str | Path, job_id: str, task_id: int | None = None) -> None:
        super().__init__(folder, job_id, task_id)
        self._launcher: subprocess.Popen[bytes] | None = None
        #: No process of the job is left, and none will come (seen once: not looked for again).
        self._gone = False

    def _process(self) -> dict[str, Any] | None:
        return records.read_process_record(self.paths)

    def _array_launcher(self) -> dict[str, Any] | None:
        """The record of the launcher that answers for this array element until it starts it
        (None for a job that is not an element, or before its launcher started)."""
        array = self._array_paths()
        return None if array is None else records.read_process_record(array)

    def _array_paths(self) -> JobPaths | None:
        """The array's record and lock, where its launcher keeps them (None: not an element)."""
        if self.paths.array_index is None:
            return None
        return records.array_paths(self.paths, self.info.folder)

    @property
    def pending_reason(self) -> str | None:
        """Why the job waits in the local queue (Slurm's words: ``LocalSlot``, ``Priority``,
        ``LocalMemory``, ``JobArrayTaskLimit``; see ``slots``), else None."""
        summary = self.summary()  # not self.state: views ask this with the state they polled
        if summary.runs or summary.terminal is not None:
            return None
        record = self._process() or self._array_launcher()
        if record is None or not _alive(record):
            return None
        reason = record.get("waiting")
        return reason if isinstance(reason, str) else None

    @classmethod
    def poll_states(cls, jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
        """States as ``job.state`` tells them, with one look at ``/proc`` for every job whose
        controller is gone (a folder of hundreds of jobs killed without a word)."""
        look = _Look()
        states = {}
        for job in jobs:
            assert isinstance(job, LocalJob)
            if job._final_state is None:
                job._final_state = job._folder_state()
            states[job.key] = job._final_state or job._live_state(look)
        return states

    def _live_state(self, look: _Look | None = None) -> str:
        if self._launcher is not None:
            self._launcher.poll()  # reap our own child so it does not linger as a zombie
        if self._gone:
            self._events.read()
            return self._folder_state(processes_gone=True) or "FAILED"
        record = self._process()
        last = self.summary()
        if record is None:
            if self._launcher is not None and self._launcher.returncode is None:
                return "PENDING"
            launcher = self._array_launcher()
            if launcher is not None and _alive(launcher):
                return "PENDING"  # waits for its array's launcher to start it
            # The folder is read again: the element's controller may have just started.
            if self._process() is not None:
                return self._live_state()
            if launcher is None and time.time() - self.info.submitted_at < 30:
                return "PENDING"  # the launcher is starting
            return self._never_started(launcher)
        alive = _alive(record)
        if not alive and not self._orphans(record, look.processes if look else None):
            self._gone = True
            # No process of the job is left: a temporary one of them left half-written is junk.
            if not self.read_only:
                for temporary in (look or _Look()).temporaries(self.paths.folder, self.job_id):
                    with contextlib.suppress(OSError):
                        temporary.unlink()
            # The folder is read again: the process may have just written its last event.
            self._events.read()
            ended = self._folder_state(processes_gone=True)
            if ended is None and not self.read_only:
                self._record_lost(
                    f"its controller process (pid {record['pid']}) died without recording an end"
                )
                ended = self._folder_state(processes_gone=True)
            return ended or "FAILED"
        if record.get("role") == "launcher" or last.runs == 0:
            return "PENDING"
        if last.last is not None and last.last.get("event") == "requeued":
            return "REQUEUED"
        return "RUNNING"

    def _never_started(self, launcher: dict[str, Any] | None) -> str:
        """The state of an array element whose launcher is gone (or never came) before it
        started the element: its end is recorded (once), so that catalog, clean and views
        see it over; still PENDING while a process holds the job's lock (the launcher forked
        its controller just before it died: that one runs it)."""
        if self.read_only:
            return "FAILED"
        if launcher is None:
            reason = "its array's launcher never started (no sign of it 30 s after submission)"
        else:
            reason = (
                f"its array's launcher process (pid {launcher['pid']}) ended before starting "
                f"it (its log: {self._launcher_log()})"
            )
        with _free_lock(self.paths.local_lock) as free:
            if not free:
                return "PENDING"
            self._record_lost(reason)
        return self._folder_state(processes_gone=True) or "FAILED"

    def _record_lost(self, reason: str) -> None:
        """Record the end of a job whose processes all died without a word (SIGKILL, the OOM
        killer), at its last sign of life, with ``reason``: it is then over for every reader,
        which no longer looks for its processes, and it can be cleaned up. Where the disk
        refuses the record (full), it is left to a later look: reading a state never fails for
        a write."""
        with exclusive_lock(self.paths.events), contextlib.suppress(WriteError):
            if summarize(read_events(self.paths.events)).terminal is not None:
                return  # recorded meanwhile (another reader, or the job's last write)
            events = self._events.read()
            signs = [float(events[-1]["t"])] if events else []
            for path in (self.paths.heartbeat, self.paths.stdout, self.paths.stderr):
                with contextlib.suppress(OSError):
                    signs.append(path.stat().st_mtime)
            append_event(
                self.paths.events,
                "failed",
                t=max(signs, default=time.time()),
                state="FAILED",
                reason=reason,
            )

    def _orphans(
        self, record: dict[str, Any], table: processes.ProcessTable | None = None
    ) -> list[int]:
        """Processes of the job that outlived its controller (``record``): they may still
        write its files. Its process group (the controller led one; its pid, if reused by
        another process, is not counted), and those that left it with the job's id."""
        leader, started = record["pid"], record.get("start_time")
        group = [
            pid
            for pid in processes.in_process_group(leader, table)
            if pid != leader or processes.start_time(pid) == started
        ]
        return group + self._escaped_processes(table)

    def _escaped_processes(self, table: processes.ProcessTable | None = None) -> list[int]:
        """Processes that left the job's process group but carry its id in their environment."""
        return processes.processes_with_env(
            {ENV_JOB_ID: self.job_id, ENV_FOLDER: str(self.paths.folder)}, table
        )

    def _why_no_result(self, task: int) -> str:
        record = self._process()
        alive = record is not None and _alive(record)
        if self.summary().terminal is None and record is not None and not alive:
            return (
                f"Job {self.job_id}: its controller process (pid {record['pid']}) died "
                f"without recording an end; see {self.paths.for_task(task).stderr}"
            )
        launcher = self._array_launcher()
        if launcher and record is None and self.summary().terminal is None:
            return (
                f"Job {self.job_id}: its array's launcher process (pid {launcher['pid']}) "
                f"ended before starting it; see {self._launcher_log()}"
            )
        return super()._why_no_result(task)

    def _launcher_log(self) -> Path | None:
        """The log of an array element's launcher: its first element's."""
        array = self._array_paths()
        return None if array is None else JobPaths(array.folder, f"{array.job_id}_0").stderr

    @contextlib.contextmanager
    def _removal_guard(self) -> Iterator[bool]:
        """The job's lock, which its processes hold while any of them lives, and an array
        element's launcher lock, held by the launcher that may still start it: both taken, no
        process can claim the job; one busy, a process of the job still runs."""
        array = self._array_paths()
        with _free_lock(self.paths.local_lock) as free:
            if not free or array is None:
                yield free
                return
            with _free_lock(array.local_lock) as launcher_gone:
                yield launcher_gone

    def _send_interrupt(self, reason: str) -> None:
        record = self._process()
        if record is None or record.get("role") != "controller":
            raise RuntimeError(f"job {self.job_id} has no running controller to interrupt")
        atomic_write_text(self.paths.signal_request, json.dumps({"reason": reason, "by": "user"}))
        os.kill(record["pid"], signal.SIGUSR1)

    def _cancel(self) -> None:
        # Recorded first: the event is what keeps a pending array element's launcher from
        # starting it (and a local kill cannot fail the way a scancel can).
        try:
            self._record_cancelled()
        except WriteError as unrecorded:  # a full disk must not keep the job running
            self._stop_processes()
            raise WriteError(
                unrecorded.errno,
                f"{unrecorded.cause()}: job {self.job_id}'s processes were stopped, but its "
                "cancel could not be recorded (with room again, it reads FAILED)",
                unrecorded.filename,
            ) from unrecorded
        self._stop_processes()

    def _stop_processes(self) -> None:
        """End every process of the job: its controller's group, what outlived a dead
        controller, what escaped the group; then reap our own launcher."""
        record = self._process()
        if record is not None and record.get("role") == "controller":
            pid = record["pid"]
            if processes.is_alive(pid, record.get("start_time")):
                group = [pid, *processes.descendants(pid)]
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
                processes.terminate(group, _CANCEL_GRACE_S)
            else:  # what outlived a dead controller
                processes.terminate(self._orphans(record), _CANCEL_GRACE_S)
        if self.paths.local_process.exists():  # else no process of it ever ran: none to find
            processes.terminate(self._escaped_processes(), _CANCEL_GRACE_S)
        if self._launcher is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._launcher.wait(timeout=0.1)

@contextlib.contextmanager
def _free_lock(path: Path) -> Iterator[bool]:
    """Hold the lock file ``path`` if no process does (True; also when there is no such file:
    no process ever claimed it), else False."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _alive(record: dict[str, Any]) -> bool:
    """Whether the process a record names still runs (the same process: pid reuse aside)."""
    return processes.is_alive(record["pid"], record.get("start_time"))
