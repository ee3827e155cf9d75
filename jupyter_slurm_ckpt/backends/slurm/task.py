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
from ...core.files import remove_stale_temp_files
from ...core.info import JobInfo
from ...core.paths import JobPaths, resolve_folder
from ...core.worker import RequeueError, Termination
from .. import processes
from .commands import COMMAND_TIMEOUT_S, SchedulerError, run_command, show_job
from .signals import classify_signal, classify_termination

#: ``scontrol show job`` at a SIGTERM: answered in ~10 ms, and the run has KillWait to live.
TERMINATION_QUERY_TIMEOUT_S = 2.0
#: Pauses between ``scontrol requeue`` attempts while the controller does not answer.
REQUEUE_FIRST_PAUSE_S = 0.5
REQUEUE_MAX_PAUSE_S = 8.0

class SlurmRuntime:
    """The worker's view of Slurm: why USR2 or SIGTERM came, and ``scontrol requeue``."""

    def __init__(self, paths: JobPaths, info: JobInfo) -> None:
        self.paths = paths
        self.info = info
        # Slurm commands name an array element A_a: its raw SLURM_JOB_ID may be the array's
        # own id, and `scontrol requeue <array id>` would requeue every element.
        self.slurm_job_id = paths.job_id

    def signal_reason(self) -> str:
        """The reason ``_interrupt`` wrote, else told from Slurm's view of this job."""
        with contextlib.suppress(OSError, ValueError):
            request = json.loads(self.paths.signal_request.read_text())
            if request.get("reason") in ("timeout", "preemption"):
                return str(request["reason"])
        fields = show_job(self.slurm_job_id)
        return classify_signal(fields, self.info.signal_delay_s, time.time())

    def termination(self) -> Termination:
        """Why Slurm sends SIGTERM now: asked at once (the run has KillWait seconds left)."""
        fields = show_job(self.slurm_job_id, timeout=TERMINATION_QUERY_TIMEOUT_S)
        return classify_termination(fields, JobEnvironment().restart_count)

    def requeue(self, deadline: float) -> None:
        """``scontrol requeue`` this job, retried with back-off while Slurm cannot be reached.

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
                return
            worker.say(f"scontrol requeue failed: {problem}")
            if time.monotonic() + pause >= deadline or not _worth_retrying(problem):
                raise RequeueError(problem)
            time.sleep(pause)
            pause = min(pause * 2, REQUEUE_MAX_PAUSE_S)

    def end_run(self) -> NoReturn:
        """Leave: Slurm starts the next run from the new payload."""
        worker.flush_output()
        os._exit(0)


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
