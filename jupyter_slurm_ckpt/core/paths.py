"""Names of every file and folder the package writes: the job folder is the contract between
processes. :class:`JobPaths` names the files of one job, :class:`PackagePaths` the rest (what a
job folder holds beside its jobs' files, the user's agent and SSH sockets, the local copies of
job folders on a cluster reached over SSH); :class:`JobKey` names a
job itself (its folder and its id).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

#: Job ids we create or accept: Slurm's (``123``, ``123_4``) and ours (``L12``, ``L12_3``,
#: ``DEBUG4``).
JOB_ID_PATTERN = re.compile(r"^(?:[A-Za-z]|DEBUG)?[0-9]+(_[0-9]+)?$")


def is_valid_job_id(job_id: str) -> bool:
    """True when ``job_id`` has the shape of an id we create (safe inside a file name)."""
    return bool(JOB_ID_PATTERN.match(job_id))


def array_index(job_id: str) -> int | None:
    """The index of an array element's id (``123_4``, ``L12_4``: 4); None for another job."""
    _, separator, index = job_id.partition("_")
    return int(index) if separator and index.isdigit() else None


def resolve_folder(folder: str | Path, job_id: str) -> Path:
    """Substitute submitit's ``%j``, ``%A`` and ``%a`` in a folder template for one job."""
    text = str(folder)
    if "%" not in text:
        return _absolute(text)
    array_id, _, task = job_id.partition("_")
    text = text.replace("%j", job_id).replace("%A", array_id).replace("%a", task or "0")
    return _absolute(text)


def template_root(folder: str | Path) -> Path:
    """The part of a folder template before its first ``%`` placeholder."""
    return _template_root(_absolute(str(folder)))


@functools.lru_cache(maxsize=64)
def _template_root(folder: Path) -> Path:
    kept = []
    for part in folder.parts:
        if "%" in part:
            break
        kept.append(part)
    return Path(*kept)


def _absolute(text: str) -> Path:
    # Asked once per job file name: the answer for a folder is kept (per working directory:
    # a relative folder is relative to the current one; ~ is expanded each time).
    if text.startswith("~"):
        return Path(text).expanduser().absolute()
    return _absolute_in(text, "" if text.startswith("/") else os.getcwd())


@functools.lru_cache(maxsize=256)
def _absolute_in(text: str, cwd: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else Path(cwd, path)


class JobKey(NamedTuple):
    """What names a job: its folder and its id together (local ids repeat from folder to
    folder, so no map, cache or view keys a job by its id alone). ``task`` names one task's
    view of a multi-task job (``job.task(1)``), None for the whole job."""

    folder: Path
    job_id: str
    task: int | None = None

    def __str__(self) -> str:
        task = "" if self.task is None else f" (task {self.task})"
        return f"{self.job_id}{task} in {self.folder}"


@dataclass(frozen=True)
class JobPaths:
    """Names of every file of one job (and, through :meth:`for_task`, of one of its tasks)."""

    folder: Path
    job_id: str
    task_id: int = 0

    #: The end of a job's description file's name (``<id>_job.json``): its presence marks a job.
    INFO_SUFFIX: ClassVar[str] = "_job.json"
    #: The end of a job's payload file's name (``<id>_submitted.pkl``).
    PAYLOAD_SUFFIX: ClassVar[str] = "_submitted.pkl"

    @classmethod
    def job_id_of(cls, name: str, suffix: str = INFO_SUFFIX) -> str | None:
        """The id of the job whose description file is named ``name`` (whose file ending with
        ``suffix``, e.g. :attr:`PAYLOAD_SUFFIX`); None for another file."""
        job_id = name[: -len(suffix)] if name.endswith(suffix) else ""
        return job_id if is_valid_job_id(job_id) else None

    @staticmethod
    def log_name(job: str, task: int | str, stream: str) -> str:
        """A log's file name: ``<job>_<task>_log.out`` (``stream`` ``"out"``) or ``.err``; with
        Slurm's placeholders, its output file pattern (``log_name("%j", "%t", "out")``)."""
        return f"{job}_{task}_log.{stream}"

    @classmethod
    def create(cls, folder: str | Path, job_id: str, task_id: int = 0) -> JobPaths:
        """Paths of ``job_id`` whose folder template is ``folder`` (``%j`` resolved)."""
        return cls(resolve_folder(folder, job_id), job_id, task_id)

    @property
    def array_index(self) -> int | None:
        """This job's index in its array (``123_4``: 4); None for a job of its own."""
        return array_index(self.job_id)

    def for_task(self, task_id: int) -> JobPaths:
        """The same job's paths seen from task ``task_id``."""
        return self if task_id == self.task_id else JobPaths(self.folder, self.job_id, task_id)

    def _file(self, suffix: str) -> Path:
        return self.folder / f"{self.job_id}_{suffix}"

    @property
    def submission_file(self) -> Path:
        """The Slurm batch script as submitted (one per array: ``<array id>_submission.sh``)."""
        return self.folder / f"{self.job_id.partition('_')[0]}_submission.sh"

    @functools.cached_property
    def submitted_pickle(self) -> Path:
        """The payload that the next run executes (replaced by each checkpoint)."""
        return self.folder / f"{self.job_id}{self.PAYLOAD_SUFFIX}"

    @functools.cached_property
    def result_pickle(self) -> Path:
        """This task's outcome: ``("success", value)`` or ``("error", traceback)``."""
        return self._file(f"{self.task_id}_result.pkl")

    @functools.cached_property
    def stdout(self) -> Path:
        """This task's standard output, appended across requeues."""
        return self.folder / self.log_name(self.job_id, self.task_id, "out")

    @functools.cached_property
    def stderr(self) -> Path:
        """This task's standard error, appended across requeues."""
        return self.folder / self.log_name(self.job_id, self.task_id, "err")

    @functools.cached_property
    def events(self) -> Path:
        """The job's event log (JSON lines), shared by its tasks."""
        return self._file("events.jsonl")

    @functools.cached_property
    def info(self) -> Path:
        """The job's description (backend, parameters); its presence marks a job."""
        return self.folder / f"{self.job_id}{self.INFO_SUFFIX}"

    @property
    def heartbeat(self) -> Path:
        """Touched by a running job every minute or so: the time of its last sign of life."""
        return self._file("heartbeat")

    @property
    def signal_request(self) -> Path:
        """Why the next USR2 is sent (preemption or timeout), written before sending it."""
        return self._file("signal.json")

    @property
    def mirrored(self) -> Path:
        """In the local copy of a job folder on a cluster reached over SSH: how far each of
        the job's logs is copied (the log copies keep only their ends)."""
        return self._file("mirrored.json")

    @property
    def local_process(self) -> Path:
        """The local backend's controller process (pid and start time), for re-attach."""
        return self._file("local.json")

    @property
    def local_lock(self) -> Path:
        """Locked by the local job's controller and its forked processes while they live."""
        return self._file("local.lock")


@dataclass(frozen=True)
class PackagePaths:
    """Names of what the package writes besides each job's own files: in a job folder, the
    job id counters, the cells ``%%slurm`` submitted and the working directories of checkpoint
    verifications; and, outside any job folder, the sockets of the user's local agents and SSH
    master connections, and the mirrors of job folders on clusters reached over SSH.

    ``PackagePaths(root)`` for the job folder ``root`` (:meth:`of` for a folder template).
    """

    root: Path

    #: The agents' sockets, in :meth:`agent_folder`.
    AGENT_SOCKETS: ClassVar[str] = "agent-*.sock"

    @classmethod
    def of(cls, folder: str | Path) -> PackagePaths:
        """The names of the job folder ``folder`` (a template: its part before any ``%``)."""
        return cls(template_root(folder))

    def job_counter(self, cluster: str) -> Path:
        """The last job number a backend handed out here (``.local_job_counter``...)."""
        return self.root / f".{cluster}_job_counter"

    @property
    def cells(self) -> Path:
        """The cells ``%%slurm`` submitted: the jobs' tracebacks show their lines."""
        return self.root / "cells"

    def cell(self, digest: str) -> Path:
        """The file of the cell whose text hashes to ``digest``."""
        return self.cells / f"cell_{digest}.py"

    @property
    def verifications(self) -> Path:
        """The working directories of ``verify_checkpoint`` calls."""
        return self.root / "verify"

    def verification(self, name: str, stamp: str) -> Path:
        """One verification's folder (one working directory per run inside)."""
        return self.verifications / f"{name}-{stamp}"

    @staticmethod
    def agent_folder(runtime_dir: str | Path) -> Path:
        """The user's folder of agent sockets, in ``runtime_dir`` (``$XDG_RUNTIME_DIR``, or
        the temporary folder)."""
        return Path(runtime_dir) / f"jupyter-slurm-ckpt-{os.getuid()}"

    @staticmethod
    def slot_folder(agent_folder: Path) -> Path:
        """The local queue's slot files (``backends.local.slots``), in the agent folder."""
        return agent_folder / "slots"

    @staticmethod
    def agent_socket(folder: Path, key: str) -> Path:
        """The socket of the agent whose context has the key ``key``."""
        return folder / f"agent-{key}.sock"

    @staticmethod
    def ssh_mirror(cache_dir: Path, identity: str, remote_folder: str) -> Path:
        """Where this machine keeps its copy of the remote job folder ``remote_folder`` (an
        absolute path there, ``%j`` placeholders kept) of the account ``identity``: under the
        user's cache, the remote path below the account's name."""
        return Path(cache_dir) / "jupyter_slurm_ckpt" / "ssh" / identity / remote_folder.lstrip("/")

    @staticmethod
    def ssh_control_path(folder: Path, identity: str) -> Path:
        """The socket of the SSH master connection to the account ``identity``
        (``user@host_port``), in the user's private ``folder`` (short: sockets' paths are
        limited to ~100 bytes)."""
        return folder / f"ssh-{hashlib.sha1(identity.encode()).hexdigest()[:16]}"

    @staticmethod
    def agent_socket_before_listening(socket: Path, pid: int) -> Path:
        """Where agent ``pid`` binds its socket before giving it its name (once it listens)."""
        return socket.with_name(f".{socket.name}.{pid}")
