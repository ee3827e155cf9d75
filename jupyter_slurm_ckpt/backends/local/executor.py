"""``LocalExecutor``: the local backend's submitting side (the embedded default).

Each job is real processes on this machine: a controller per job (``controller``, the side that
runs the job) emulates Slurm there: time limit with a warning signal, hard kill, requeue in place
with the same job id. Submitting starts that controller, forked by the user's warm agent
(``agent``) or started directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any, ClassVar

from ...core.errors import InvalidParameterError
from ...core.executor import PythonExecutor, Reservation
from ...core.files import next_counter_value, open_private_append
from ...core.job import Job
from ...core.parameters import Check, tasks_per_job
from ...core.paths import JobPaths, PackagePaths
from ...core.payload import Pickled
from . import agent_client
from .job import LocalJob

#: The module of the controller, started as ``python -m`` when no agent forks it.
CONTROLLER_MODULE = "jupyter_slurm_ckpt.backends.local.controller"

#: Tasks of one local job (``nodes * tasks_per_node``): each is a process on this machine, so a
#: typo such as ``--nodes 100000`` must not fork that many.
MAX_LOCAL_TASKS = 256


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


class LocalExecutor(PythonExecutor):
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
        "slots": int,
    }

    def update_parameters(self, **kwargs: Any) -> None:
        """Set job parameters (see ``Executor.update_parameters``): the generic ones, and
        ``signal_delay_s``, ``visible_gpus``, ``array_parallelism`` (elements of an array that
        run at once), ``slots`` (local jobs of yours that run at once on this machine, this
        one included: the others wait PENDING in the local queue; default: as many as its CPUs
        and memory hold, see ``slots.default_slots``) and ``setup`` (shell lines run before the
        job starts, as in a Slurm batch script).

        Raises
        ------
        ValueError
            Also when the job would have more than :data:`MAX_LOCAL_TASKS` tasks, or asks for
            more GPUs than ``visible_gpus`` lists.
        """
        super().update_parameters(**kwargs)

    def _check_parameters(self, parameters: dict[str, Any]) -> None:
        """Refuse more than :data:`MAX_LOCAL_TASKS` tasks, or more GPUs than listed."""
        tasks = tasks_per_job(parameters)
        if tasks > MAX_LOCAL_TASKS:
            raise InvalidParameterError(
                f"nodes * tasks_per_node = {tasks} local processes per job, over the local "
                f"backend's limit of {MAX_LOCAL_TASKS}"
            )
        visible = parameters.get("visible_gpus")
        per_node = parameters.get("gpus_per_node") or 0
        nodes = int(parameters.get("nodes") or 1)
        if visible and per_node * nodes > len(visible):  # each emulated node has its own
            raise InvalidParameterError(
                f"nodes={nodes} * gpus_per_node={per_node} GPUs (each node has its own), but "
                f"visible_gpus lists only {list(visible)}"
            )

    def _reserve_job_ids(self, count: int, array: bool) -> Reservation:
        """``L<n>`` (``L<n>_<i>`` for array elements), from the job folder's counter."""
        number = next_counter_value(PackagePaths.of(self.folder).job_counter(self.cluster))
        if not array:
            return Reservation([f"L{number}"], array)
        return Reservation([f"L{number}_{index}" for index in range(count)], array)

    def _launch(self, reservation: Reservation) -> subprocess.Popen[bytes] | None:
        """Start the jobs' controller (one for an array, which forks one per job): forked by
        the warm agent, else started here; returns the process started here, if any."""
        job_ids = reservation.job_ids
        parallelism = int(self.parameters.get("array_parallelism") or len(job_ids))
        argv = [str(self.folder), str(parallelism), *job_ids]
        paths = JobPaths.create(self.folder, job_ids[0])
        log = paths.stdout if self.parameters.get("stderr_to_stdout") else paths.stderr
        setup = self.parameters.get("setup") or ()
        command = [self.python, "-m", CONTROLLER_MODULE, *argv]
        if setup:
            # User shell by design, as in a Slurm batch script; our argv is passed as "$@",
            # never pasted into the shell text. exec: the setup's environment is the job's.
            command = ["bash", "-c", "\n".join([*setup, 'exec "$@"']), "setup", *command]
        elif self.python == sys.executable and agent_client.launch(argv, log) is not None:
            return None  # forked by the warm agent: no Python start-up on the submission path
        fd = open_private_append(log)
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)

    def _make_job(self, job_id: str, pickled: Pickled, launched: Any) -> Job[Any]:
        """The job, which reaps the process :meth:`_launch` started (so it leaves no zombie)."""
        job = super()._make_job(job_id, pickled, launched)
        if isinstance(job, LocalJob) and isinstance(launched, subprocess.Popen):
            job._launcher = launched
        return job
