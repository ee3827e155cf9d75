"""Local backend (the embedded default): each job is real processes on this machine.

A controller process per job (see ``local_controller``) emulates Slurm: time limit with a warning
signal, hard kill, requeue in place with the same job id. Any process can re-attach a local job
from its folder: the controller's pid and start time are in ``<id>_local.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ..core.environment import ENV_FOLDER, ENV_JOB_ID
from ..core.errors import InvalidParameterError
from ..core.executor import Check, Executor
from ..core.files import (
    atomic_write_text,
    next_counter_value,
    open_private_append,
    remove_stale_temp_files,
)
from ..core.info import JobInfo
from ..core.job import Job
from ..core.paths import template_root
from . import local_agent, processes

_CANCEL_GRACE_S = 1.0
#: Tasks of one local job (``nodes * tasks_per_node``): each is a process on this machine, so a
#: typo such as ``--nodes 100000`` must not fork that many.
MAX_LOCAL_TASKS = 256


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
            # Nothing of this job writes any more: a temporary left by a killed writer is junk.
            if not self.read_only:
                remove_stale_temp_files(self.paths.folder, self.job_id)
            # The folder is read again: the process may have just written its last event.
            self._events.read()
            return self._folder_state() or "FAILED"
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
        return [
            pid
            for pid in processes.processes_with_env(ENV_JOB_ID, self.job_id)
            if _environ_value(pid, ENV_FOLDER) == str(self.paths.folder)
        ]

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


def _environ_value(pid: int, name: str) -> str | None:
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            key, _, value = item.partition(b"=")
            if key.decode(errors="replace") == name:
                return value.decode(errors="replace")
    return None


def _check_visible_gpus(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of GPU numbers, not {value!r}")
    gpus = tuple(value)
    if not all(isinstance(gpu, int) and not isinstance(gpu, bool) and gpu >= 0 for gpu in gpus):
        raise ValueError(f"{name} must be a list of GPU numbers, not {value!r}")
    return gpus


def _check_setup(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of shell lines, not {value!r}")
    for line in value:
        if not isinstance(line, str) or "\n" in line or "\0" in line:
            raise ValueError(f"each {name} line must be a one-line string, not {line!r}")
    return tuple(value)


class LocalExecutor(Executor):
    """Run jobs as local processes that behave like Slurm jobs (signal, limit, requeue).

    Parameters
    ----------
    folder
        Job folder (``%j`` allowed).
    max_num_timeout
        How many timeouts a job may be requeued after (preemptions are unlimited).
    max_pickle_size_gb
        Payloads larger than this are refused before anything is written.
    python
        The interpreter that runs the jobs (default: this one).
    """

    cluster: ClassVar[str] = "local"
    job_class: ClassVar[type[Job[Any]]] = LocalJob
    specific_parameters: ClassVar[dict[str, Check]] = {
        "signal_delay_s": float,
        "array_parallelism": int,
        "visible_gpus": _check_visible_gpus,
        "setup": _check_setup,
    }

    def __init__(
        self,
        folder: str | Path,
        max_num_timeout: int = 3,
        max_pickle_size_gb: float = 1.0,
        python: str | None = None,
    ) -> None:
        super().__init__(folder, max_num_timeout, max_pickle_size_gb)
        self.python = python or sys.executable

    @classmethod
    def _from_info(cls, info: JobInfo) -> Executor:
        """The job's interpreter too (see ``Executor.for_job``)."""
        return cls(info.folder, max_num_timeout=info.max_num_timeout, python=info.python)

    def update_parameters(self, **kwargs: Any) -> None:
        """Set job parameters (see ``Executor.update_parameters``): the generic ones, and
        ``signal_delay_s``, ``visible_gpus``, ``array_parallelism`` and ``setup`` (shell lines
        run before the job starts, as in a Slurm batch script).

        Raises
        ------
        ValueError
            Also when the job would have more than :data:`MAX_LOCAL_TASKS` tasks, or asks for
            more GPUs than ``visible_gpus`` lists.
        """
        super().update_parameters(**kwargs)

    def _check_parameters(self, parameters: dict[str, Any]) -> None:
        tasks = int(parameters.get("nodes") or 1) * int(parameters.get("tasks_per_node") or 1)
        if tasks > MAX_LOCAL_TASKS:
            raise InvalidParameterError(
                f"nodes * tasks_per_node = {tasks} local processes per job, over the local "
                f"backend's limit of {MAX_LOCAL_TASKS}"
            )
        visible = parameters.get("visible_gpus")
        wanted = parameters.get("gpus_per_node") or 0
        if visible and wanted > len(visible):
            raise InvalidParameterError(
                f"gpus_per_node={wanted}, but visible_gpus lists only {list(visible)}"
            )

    def _allocate_job_ids(self, count: int, array: bool) -> list[str]:
        number = next_counter_value(template_root(self.folder) / ".local_job_counter")
        if not array:
            return [f"L{number}"]
        return [f"L{number}_{index}" for index in range(count)]

    def _launch(self, job_ids: list[str]) -> None:
        parallelism = int(self.parameters.get("array_parallelism") or len(job_ids))
        argv = [str(self.folder), str(parallelism), *job_ids]
        paths = self.job_class(self.folder, job_ids[0]).paths
        log = paths.stdout if self.parameters.get("stderr_to_stdout") else paths.stderr
        setup = self.parameters.get("setup") or ()
        self._last_launcher = None
        command = [self.python, "-m", "jupyter_slurm_ckpt.backends.local_controller", *argv]
        if setup:
            # User shell by design, as in a Slurm batch script; our argv is passed as "$@",
            # never pasted into the shell text. exec: the setup's environment is the job's.
            command = ["bash", "-c", "\n".join([*setup, 'exec "$@"']), "setup", *command]
        elif self.python == sys.executable and local_agent.launch(argv, log) is not None:
            return  # forked by the warm agent: no Python start-up on the submission path
        fd = open_private_append(log)
        try:
            self._last_launcher = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)

    def _make_job(self, job_id: str) -> Job[Any]:
        job = super()._make_job(job_id)
        if isinstance(job, LocalJob):
            job._launcher = getattr(self, "_last_launcher", None)
        return job
