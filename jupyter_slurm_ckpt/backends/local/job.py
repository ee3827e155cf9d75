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
from .. import processes

_CANCEL_GRACE_S = 1.0


class LocalJob(Job[Any]):
    """A job run by the local backend. ``LocalJob(folder, job_id)`` re-attaches to it."""

    cluster: ClassVar[str] = "local"

    def __init__(self, folder: str | Path, job_id: str, task_id: int | None = None) -> None:
        super().__init__(folder, job_id, task_id)
        self._launcher: subprocess.Popen[bytes] | None = None

    def _process(self) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(self.paths.local_process.read_text())
            if isinstance(record, dict) and isinstance(record.get("pid"), int):
                return record
        return None

    def _live_state(self) -> str:
        if self._launcher is not None:
            self._launcher.poll()  # reap our own child so it does not linger as a zombie
        record = self._process()
        last = self.summary()
        if record is None:
            if self._launcher is not None and self._launcher.returncode is None:
                return "PENDING"
            if time.time() - self.info.submitted_at < 30:
                return "PENDING"  # the launcher is starting
            return "FAILED"
        alive = processes.is_alive(record["pid"], record.get("start_time"))
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
        alive = record is not None and processes.is_alive(record["pid"], record.get("start_time"))
        if self.summary().terminal is None and record is not None and not alive:
            return (
                f"Job {self.job_id}: its controller process (pid {record['pid']}) died "
                f"without recording an end; see {self.paths.for_task(task).stderr}"
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
        processes.terminate(self._escaped_processes(), _CANCEL_GRACE_S)
        if self._launcher is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._launcher.wait(timeout=0.1)
