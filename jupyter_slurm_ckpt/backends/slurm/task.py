"""The Slurm job's entry point: ``python -m jupyter_slurm_ckpt.backends.slurm.task FOLDER``.

The batch script ``exec``s it (or ``srun`` starts one per task). It finds its job's files from
Slurm's variables (an array element ``A_a`` from ``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID``)
and runs the task through the core worker with a :class:`SlurmRuntime`, which tells why a signal
came (``signals``) and asks Slurm for the requeue.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from typing import NoReturn

from ...core import worker
from ...core.environment import JobEnvironment, set_worker_environment
from ...core.events import EventReader
from ...core.files import remove_stale_temp_files
from ...core.info import JobInfo
from ...core.paths import JobPaths, resolve_folder
from ...core.runtime import RequeueError, Termination
from .. import processes
from .commands import COMMAND_TIMEOUT_S, SchedulerError, job_facts, run_command
from .signals import classify_signal, classify_termination

#: How long a run waits for Slurm to say why a signal came (answered in ~10 ms). One bound for
#: the warning and for SIGTERM: the run's window after either is short (the warning's delay, a
#: preemption's grace time, KillWait), and a controller that takes longer is taken as away.
QUERY_TIMEOUT_S = 2.0
#: How long a task other than 0 waits for task 0's reason of the signal they both got.
TASK_0_WAIT_S = QUERY_TIMEOUT_S + 1.0
#: Clocks of the job's nodes may differ by this much.
CLOCK_SLACK_S = 2.0
#: Pauses between ``scontrol requeue`` attempts while the controller does not answer.
REQUEUE_FIRST_PAUSE_S = 0.5
REQUEUE_MAX_PAUSE_S = 8.0
#: What ``scontrol requeue`` says of a job that is back in the queue already: Slurm requeued it
#: itself (a preemption's end, a requeue that raced ours).
ALREADY_REQUEUED = "pending execution"


class SlurmRuntime:
    """The worker's view of Slurm: why USR2 or SIGTERM came, and ``scontrol requeue``.

    Task 0 asks Slurm, once per signal and bounded by :data:`QUERY_TIMEOUT_S`; when Slurm does
    not answer, what the run knew when it started tells (its end time). The other tasks of a
    multi-task job never ask: they read task 0's answer.
    """

    def __init__(self, paths: JobPaths, info: JobInfo) -> None:
        self.paths = paths
        self.info = info
        # Slurm commands name an array element A_a: its raw SLURM_JOB_ID may be the array's
        # own id, and `scontrol requeue <array id>` would requeue every element.
        self.slurm_job_id = paths.job_id
        self.expected_end = expected_end(info)

    def signal_reason(self) -> str:
        """The reason ``_interrupt`` wrote, else told from Slurm's view of this job."""
        with contextlib.suppress(OSError, ValueError):
            request = json.loads(self.paths.signal_request.read_text())
            if request.get("reason") in ("timeout", "preemption"):
                return str(request["reason"])
        if self.paths.task_id != 0:
            return self._reason_of_task_0(time.time())
        facts = job_facts(self.slurm_job_id, timeout=QUERY_TIMEOUT_S)
        return classify_signal(facts, self.info.signal_delay_s, time.time(), self.expected_end)

    def termination(self) -> Termination | None:
        """Why Slurm sends SIGTERM now: asked at once (the run has KillWait seconds left).

        None for tasks other than 0: task 0 tells why and checkpoints for the job, the others
        end as the signal says (and srun ends every task when one ends: ``--kill-on-bad-exit``).
        """
        if self.paths.task_id != 0:
            return None
        facts = job_facts(self.slurm_job_id, timeout=QUERY_TIMEOUT_S)
        restart = JobEnvironment().restart_count
        return classify_termination(facts, restart, time.time(), self.expected_end)

    def _reason_of_task_0(self, since: float) -> str:
        """The reason task 0 records for the signal every task got (``"unknown"`` if it says
        nothing within :data:`TASK_0_WAIT_S`)."""
        events = EventReader(self.paths.events)
        deadline = time.monotonic() + TASK_0_WAIT_S
        while True:
            for event in reversed(events.read()):
                if event["t"] < since - CLOCK_SLACK_S:
                    break
                if event["event"] == "signal" and event.get("task", 0) == 0:
                    return str(event.get("reason", "unknown"))
            if time.monotonic() >= deadline:
                return "unknown"
            time.sleep(0.05)

    def requeue(self, deadline: float) -> bool:
        """``scontrol requeue`` this job, retried with back-off while Slurm cannot be reached.

        Returns True when Slurm had requeued the job already ("Job is pending execution").
        Slurm SIGTERMs the job's processes once it takes the requeue: they are ignored from
        here on (the run leaves by itself). A controller that is away for maintenance or a
        fail-over answers again within the run's signal window, usually.
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pause = REQUEUE_FIRST_PAUSE_S
        while True:
            try:
                done = run_command(
                    ["scontrol", "requeue", self.slurm_job_id],
                    timeout=max(1.0, min(COMMAND_TIMEOUT_S, deadline - time.monotonic())),
                )
                problem = "" if done.returncode == 0 else done.stderr.strip() or "no message"
            except SchedulerError as error:
                problem = str(error)
            if not problem:
                return False
            if ALREADY_REQUEUED in problem:
                return True
            worker.say(f"scontrol requeue failed: {problem}")
            if time.monotonic() + pause >= deadline or not _worth_retrying(problem):
                raise RequeueError(problem)
            time.sleep(pause)
            pause = min(pause * 2, REQUEUE_MAX_PAUSE_S)

    def end_run(self) -> NoReturn:
        """Leave: Slurm starts the next run from the new payload."""
        worker.flush_output()
        os._exit(0)


def expected_end(info: JobInfo) -> float | None:
    """When the time limit ends this run, as the run knows it from the start: Slurm's
    ``SLURM_JOB_END_TIME`` (23.02+), else the process's start plus the limit."""
    given = os.environ.get("SLURM_JOB_END_TIME", "")
    if given.isdigit() and int(given) > 0:
        return float(given)
    started = processes.started_at(os.getpid())
    if info.timeout_min is None or started is None:
        return None
    return started + info.timeout_min * 60.0


def _worth_retrying(problem: str) -> bool:
    """Whether a failed requeue may succeed later: Slurm was away, not saying no."""
    refusals = ("Invalid job id", "Requested operation is presently disabled", "Access/permission")
    return not any(words in problem for words in refusals)


def job_id_from_environment(environ: dict[str, str] | os._Environ[str]) -> str:
    """Our id of the job this process runs in: ``A_a`` for an array element, else Slurm's."""
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    job_id = environ.get("SLURM_JOB_ID")
    if not job_id:
        raise RuntimeError("SLURM_JOB_ID is not set: this entry point runs inside a Slurm job")
    return job_id


def main(argv: list[str]) -> int:
    """Entry point: ``FOLDER`` (the job folder template, ``%j`` allowed)."""
    # A USR2 from here on is remembered, then handled once the payload is loaded.
    signal.signal(worker.CHECKPOINT_SIGNAL, worker.remember_early_signal)
    (folder,) = argv
    job_id = job_id_from_environment(os.environ)
    paths = JobPaths(resolve_folder(folder, job_id), job_id)
    info = JobInfo.read(paths.info)
    task = int(os.environ.get("SLURM_PROCID", "0")) if info.num_tasks > 1 else 0
    paths = paths.for_task(task)
    set_worker_environment(info, paths, restart=None)  # Slurm counts the runs itself
    if task == 0:
        # An earlier run's reason must not be read for this run's signals; the worker writes
        # "started" only after this, and _interrupt waits for that.
        with contextlib.suppress(FileNotFoundError):
            paths.signal_request.unlink()
        # Only what is older than this process: the other tasks of this run (started with it
        # by srun) may be writing their results already.
        remove_stale_temp_files(paths.folder, job_id, older_than=processes.started_at(os.getpid()))
    return worker.run_task(paths, info, SlurmRuntime(paths, info))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
