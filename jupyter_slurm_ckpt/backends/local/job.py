"""``LocalJob``: a job of the local backend, seen from any process of this machine.

Its controller (see ``controller``) records its pid and start time in ``<id>_local.json``: any
process re-attaches the job from its folder and id, tells whether it lives (pid reuse aside),
interrupts it (SIGUSR1 to the controller) and cancels its whole process tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from ...core.environment import ENV_FOLDER, ENV_JOB_ID
from ...core.files import atomic_write_text, remove_stale_temp_files
from ...core.job import Job
from ...core.paths import JobPaths
from .. import processes
from . import records

_CANCEL_GRACE_S = 1.0


class LocalJob(Job[Any]):
    """A job run by the local backend. ``LocalJob(folder, job_id)`` re-attaches to it."""

    cluster: ClassVar[str] = "local"

    def __init__(self, folder: str | Path, job_id: str, task_id: int | None = None) -> None:
        super().__init__(folder, job_id, task_id)
        self._launcher: subprocess.Popen[bytes] | None = None

    def _process(self) -> dict[str, Any] | None:
        return records.read_process_record(self.paths)

    def _array_launcher(self) -> dict[str, Any] | None:
        """The record of the launcher that answers for this array element until it starts it
        (None for a job that is not an element, or before its launcher started)."""
        array = records.array_paths(self.paths)
        return None if array is None else records.read_process_record(array)

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

    def _live_state(self) -> str:
        if self._launcher is not None:
            self._launcher.poll()  # reap our own child so it does not linger as a zombie
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
            return "FAILED"
        alive = _alive(record)
        if not alive and not self._orphans(record):
            # No process of the job is left: a temporary one of them left half-written is junk.
            if not self.read_only:
                remove_stale_temp_files(self.paths.folder, self.job_id)
            # The folder is read again: the process may have just written its last event.
            self._events.read()
            return self._folder_state(processes_gone=True) or "FAILED"
        if record.get("role") == "launcher" or last.runs == 0:
            return "PENDING"
        if last.last is not None and last.last.get("event") == "requeued":
            return "REQUEUED"
        return "RUNNING"

    def _orphans(self, record: dict[str, Any]) -> list[int]:
        """Processes of the job that outlived its controller (``record``): they may still
        write its files. Its process group (the controller led one; its pid, if reused by
        another process, is not counted), and those that left it with the job's id."""
        leader, started = record["pid"], record.get("start_time")
        group = [
            pid
            for pid in processes.in_process_group(leader)
            if pid != leader or processes.start_time(pid) == started
        ]
        return group + self._escaped_processes()

    def _escaped_processes(self) -> list[int]:
        """Processes that left the job's process group but carry its id in their environment."""
        return processes.processes_with_env(
            {ENV_JOB_ID: self.job_id, ENV_FOLDER: str(self.paths.folder)}
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
            array_id = self.job_id.partition("_")[0]
            first = JobPaths(self.paths.folder, f"{array_id}_0")  # its log is the launcher's
            return (
                f"Job {self.job_id}: its array's launcher process (pid {launcher['pid']}) "
                f"ended before starting it; see {first.stderr}"
            )
        return super()._why_no_result(task)

    def _send_interrupt(self, reason: str) -> None:
        record = self._process()
        if record is None or record.get("role") != "controller":
            raise RuntimeError(f"job {self.job_id} has no running controller to interrupt")
        atomic_write_text(self.paths.signal_request, json.dumps({"reason": reason, "by": "user"}))
        os.kill(record["pid"], signal.SIGUSR1)

    def _cancel(self) -> None:
        # Recorded first: the event is what keeps a pending array element's launcher from
        # starting it (and a local kill cannot fail the way a scancel can).
        self._record_cancelled()
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


def _alive(record: dict[str, Any]) -> bool:
    """Whether the process a record names still runs (the same process: pid reuse aside)."""
    return processes.is_alive(record["pid"], record.get("start_time"))
