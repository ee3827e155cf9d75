"""``SlurmExecutor``: ``sbatch`` behind the core's submission flow (the submitting side).

The job (or the whole array, one ``sbatch --array``) is submitted *held*, so that Slurm's id is
known before the job's files are written under it; ``scontrol release`` starts it once they are.
A failure after the ``sbatch`` cancels the held job: nothing is left half-submitted. The batch
script and its options: ``script`` (checked with ``parameters``); the job seen from any process:
``job``; the code that runs in the allocation: ``task``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...core.errors import FailedSubmissionError
from ...core.executor import PythonExecutor, Reservation
from ...core.files import atomic_write_text
from ...core.info import JobInfo
from ...core.job import Job
from ...core.parameters import DEFAULT_SIGNAL_DELAY_S, Check
from ...core.paths import JobPaths
from ...core.payload import Pickled
from . import parameters as slurm_parameters
from . import script as slurm_script
from .commands import SchedulerError, job_facts, kill_wait_s, run_command
from .job import SlurmJob
from .state import STATES


def _environment_for_sbatch() -> dict[str, str]:
    """This process's environment without the variables of a job it may run in.

    ``SLURM_UMASK`` (which sbatch takes instead of our umask when it is set) makes slurmstepd
    create the job's log files 0600, like every other file of the job folder.
    """
    drop = ("SLURM_", "SLURMD_", "SRUN_", "JSC_")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(drop) or key == "SLURM_CONF"
    }
    env["SLURM_UMASK"] = "0077"
    return env


def _sbatch(options: list[str], script: str) -> subprocess.CompletedProcess[str]:
    """Run ``sbatch`` with ``options`` and the script on stdin; its stderr as the error."""
    try:
        done = run_command(
            ["sbatch", *options], timeout=120, stdin=script, env=_environment_for_sbatch()
        )
    except SchedulerError as error:
        raise FailedSubmissionError(str(error)) from None
    if done.returncode != 0:
        raise FailedSubmissionError(done.stderr.strip() or f"sbatch exited {done.returncode}")
    return done


def _still_held(job_id: str) -> bool:
    """Whether Slurm still holds the job (priority 0), or cannot say."""
    facts = job_facts(job_id)
    return facts is None or facts.get("Priority", "0") == "0"


@dataclass
class HeldSubmission(Reservation):
    """The job ids of one ``sbatch --hold``: the held job (the array's id) and its script."""

    held: str
    script: str


class SlurmExecutor(PythonExecutor):
    """Submit jobs to Slurm with ``sbatch`` (one ``sbatch --array`` for an array).

    Parameters
    ----------
    folder
        Job folder (``%j`` allowed): on a cluster, a filesystem the nodes share.
    max_num_timeout
        How many timeouts a job may be requeued after (preemptions are unlimited).
    max_pickle_size_gb
        Payloads larger than this are refused before anything is submitted.
    python
        The interpreter the job runs (default: this one; it must exist on the nodes).
    """

    cluster: ClassVar[str] = "slurm"
    job_class: ClassVar[type[Job[Any]]] = SlurmJob
    specific_parameters: ClassVar[dict[str, Check]] = slurm_parameters.SLURM_PARAMETERS
    aliases: ClassVar[dict[str, str]] = slurm_parameters.ALIASES

    def update_parameters(self, **kwargs: Any) -> None:
        """Set parameters: submitit's Slurm names (``job_name``, ``time``, ``mem``,
        ``ntasks_per_node``, ``setup``, ``teardown``, ``additional_parameters``...; see
        ``parameters``) and its generic ones (``timeout_min`` is ``time``...).

        ``setup``/``teardown`` are shell lines run before/after the job (by design:
        ``module load ...``); ``additional_parameters`` (``--sbatch KEY=VALUE``) are any other
        sbatch options. See ``Executor.update_parameters`` for the errors.
        """
        super().update_parameters(**kwargs)

    def _own_parameter(self, name: str, value: Any) -> tuple[str, Any]:
        """Slurm's name and value (``mem_gb=2`` is ``mem="2GB"``)."""
        return slurm_parameters.own_parameter(name, value)

    def _check_parameters(self, parameters: dict[str, Any]) -> None:
        """What sbatch would refuse together (see ``parameters.check_together``)."""
        slurm_parameters.check_together(parameters)

    # -- the script ---------------------------------------------------------------------------

    def time_limit_min(self) -> float | None:
        """The ``time`` parameter in minutes (None: no limit given, or ``UNLIMITED``)."""
        return slurm_script.limit_minutes(self.parameters.get("time"))

    def _sbatch(self, array_size: int) -> tuple[list[str], str]:
        folder = slurm_script.check_folder(self.folder_on_nodes)
        num_tasks = self._num_tasks()
        options = slurm_script.sbatch_options(self.parameters, folder, array_size, num_tasks)
        script = slurm_script.batch_script(
            options, self.parameters, folder, self.python, array_size > 0, num_tasks
        )
        return options, script

    def sbatch_script(self, array_size: int = 0) -> str:
        """The batch script a submission would use (``--dry-run``); submits nothing.

        Parameters
        ----------
        array_size
            Number of array elements, 0 for a single job.
        """
        return self._sbatch(array_size)[1]

    # -- the core's hooks ---------------------------------------------------------------------

    def _job_info(self, job_id: str) -> JobInfo:
        """Describe the job Slurm really runs: a limit of whole minutes, the warning it gets,
        and the time a SIGTERM leaves (KillWait, read from Slurm's configuration once)."""
        info = super()._job_info(job_id)
        info.name = self.parameters.get("job_name") or "job"
        minutes = slurm_script.time_limit_minutes(self.time_limit_min())
        info.timeout_min = None if minutes is None else float(minutes)
        delay = self.parameters.get("signal_delay_s")
        info.signal_delay_s = float(
            slurm_script.signal_delay(DEFAULT_SIGNAL_DELAY_S if delay is None else delay, minutes)
        )
        info.kill_wait_s = kill_wait_s()  # what a SIGTERM leaves the checkpoint (the budget)
        return info

    def _reserve_job_ids(self, count: int, array: bool) -> HeldSubmission:
        """``sbatch --hold`` the job (the whole array): Slurm's id, held until :meth:`_launch`.

        A held job is not checked against the nodes: one that no node can ever run (more GPUs
        than any has) waits as PENDING (BadConstraints), which the views explain. (``sbatch
        --test-only`` would refuse it at once, but also refuses valid jobs while the nodes are
        down or not registered yet, e.g. after a controller restart.)
        """
        try:
            options, script = self._sbatch(count if array else 0)
        except ValueError as error:
            raise FailedSubmissionError(str(error)) from None
        done = _sbatch(options, script)
        held = done.stdout.strip().split(";")[0]
        if not held.isdigit():
            raise FailedSubmissionError(f"sbatch printed no job id: {done.stdout.strip()!r}")
        job_ids = [f"{held}_{index}" for index in range(count)] if array else [held]
        return HeldSubmission(job_ids, array, held=held, script=script)

    def _write_job_files(
        self, reservation: Reservation, job_id: str, pickled: Pickled
    ) -> list[Path]:
        """The job's files, and what sbatch got, for the user to read (submitit's
        ``<id>_submission.sh``; one per array)."""
        assert isinstance(reservation, HeldSubmission)
        written = super()._write_job_files(reservation, job_id, pickled)
        script = JobPaths.create(self.folder, job_id).submission_file
        if not script.exists():
            atomic_write_text(script, reservation.script)
            written.append(script)
        return written

    def _launch(self, reservation: Reservation) -> None:
        """``scontrol release`` the held job: it runs from its files, written now.

        A request the partition cannot give now (more CPUs, memory or GPUs than its nodes have
        free or up) is released all the same, but ``scontrol`` exits 1 ("Requested partition
        configuration not available now"): the job waits PENDING with Slurm's reason
        (PartitionConfig...), as it would after a plain ``sbatch``. Only a job still held failed.
        """
        assert isinstance(reservation, HeldSubmission)
        done = run_command(["scontrol", "release", reservation.held])
        if done.returncode != 0 and _still_held(reservation.held):
            raise FailedSubmissionError(
                f"scontrol release {reservation.held} failed: {done.stderr.strip()}"
            )
        STATES.submitted(reservation.job_ids)

    def _withdraw(self, reservation: Reservation) -> None:
        """Cancel the held job: its files are not (all) written, it must never run."""
        assert isinstance(reservation, HeldSubmission)
        run_command(["scancel", reservation.held])
