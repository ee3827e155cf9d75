"""One object names every file of a job: the job folder is the contract between processes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Job ids we create or accept: Slurm's (``123``, ``123_4``) and ours (``L12``, ``L12_3``,
#: ``DEBUG4``).
JOB_ID_PATTERN = re.compile(r"^(?:[A-Za-z]|DEBUG)?[0-9]+(_[0-9]+)?$")


def is_valid_job_id(job_id: str) -> bool:
    """True when ``job_id`` has the shape of an id we create (safe inside a file name)."""
    return bool(JOB_ID_PATTERN.match(job_id))


def resolve_folder(folder: str | Path, job_id: str) -> Path:
    """Substitute submitit's ``%j``, ``%A`` and ``%a`` in a folder template for one job."""
    text = str(folder)
    if "%" not in text:
        return Path(text).expanduser().absolute()
    array_id, _, task = job_id.partition("_")
    text = text.replace("%j", job_id).replace("%A", array_id).replace("%a", task or "0")
    return Path(text).expanduser().absolute()


def template_root(folder: str | Path) -> Path:
    """The part of a folder template before its first ``%`` placeholder."""
    parts = Path(str(folder)).expanduser().absolute().parts
    kept = []
    for part in parts:
        if "%" in part:
            break
        kept.append(part)
    return Path(*kept)


@dataclass(frozen=True)
class JobPaths:
    """Names of every file of one job (and, through :meth:`for_task`, of one of its tasks)."""

    folder: Path
    job_id: str
    task_id: int = 0

    @classmethod
    def create(cls, folder: str | Path, job_id: str, task_id: int = 0) -> JobPaths:
        """Paths of ``job_id`` whose folder template is ``folder`` (``%j`` resolved)."""
        return cls(resolve_folder(folder, job_id), job_id, task_id)

    def for_task(self, task_id: int) -> JobPaths:
        """The same job's paths seen from task ``task_id``."""
        return JobPaths(self.folder, self.job_id, task_id)

    def _file(self, suffix: str) -> Path:
        return self.folder / f"{self.job_id}_{suffix}"

    @property
    def submission_file(self) -> Path:
        """The Slurm batch script as submitted (one per array: ``<array id>_submission.sh``)."""
        return self.folder / f"{self.job_id.partition('_')[0]}_submission.sh"

    @property
    def submitted_pickle(self) -> Path:
        """The payload that the next run executes (replaced by each checkpoint)."""
        return self._file("submitted.pkl")

    @property
    def result_pickle(self) -> Path:
        """This task's outcome: ``("success", value)`` or ``("error", traceback)``."""
        return self._file(f"{self.task_id}_result.pkl")

    @property
    def stdout(self) -> Path:
        """This task's standard output, appended across requeues."""
        return self._file(f"{self.task_id}_log.out")

    @property
    def stderr(self) -> Path:
        """This task's standard error, appended across requeues."""
        return self._file(f"{self.task_id}_log.err")

    @property
    def events(self) -> Path:
        """The job's event log (JSON lines), shared by its tasks."""
        return self._file("events.jsonl")

    @property
    def info(self) -> Path:
        """The job's description (backend, parameters); its presence marks a job."""
        return self._file("job.json")

    @property
    def heartbeat(self) -> Path:
        """Touched by a running job every minute or so: the time of its last sign of life."""
        return self._file("heartbeat")

    @property
    def signal_request(self) -> Path:
        """Why the next USR2 is sent (preemption or timeout), written before sending it."""
        return self._file("signal.json")

    @property
    def local_process(self) -> Path:
        """The local backend's controller process (pid and start time), for re-attach."""
        return self._file("local.json")

    @property
    def local_lock(self) -> Path:
        """Locked by the local job's controller and its forked processes while they live."""
        return self._file("local.lock")
