"""``SshExecutor``: Slurm on a cluster reached over SSH, from a laptop or a workstation.

The parameters, their checks and the batch script are the Slurm backend's (``SlurmExecutor``:
the cluster runs exactly what a kernel on its login node would submit). What differs is where
the jobs start (:meth:`SshExecutor._start_jobs`): the payloads, pickled here once as for any
backend, go to the cluster in the body of one ``submit`` request; the remote side, this package
in a Python environment there, submits them with its own ``SlurmExecutor`` (``sbatch --hold``,
the job files, ``scontrol release``) and answers with each job's description and first events,
which land in the mirror here before ``submit`` returns. A payload cut short on the way never
becomes a job (see ``remote``).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any, ClassVar

from ...core import array_payload
from ...core.errors import FailedSubmissionError
from ...core.executor import Executor, Reservation
from ...core.info import JobInfo
from ...core.job import Job
from ...core.payload import Pickled
from ..slurm.executor import SlurmExecutor
from .connection import RemoteUnreachable
from .hello import RemoteEnvironmentError
from .job import SshJob
from .mirror import mirror_folder
from .protocol import Writer
from .session import Remote, remote_for
from .states import RemoteStates, states_of
from .target import SshTarget

#: The remote Python when none is given: the one a login shell finds there.
DEFAULT_REMOTE_PYTHON = "python3"


def remote_path(folder: str, home: str) -> str:
    """A folder named for the cluster, absolute there: ``~``, ``~/x`` and relative names are
    in the remote home (``%j`` placeholders are kept)."""
    if folder == "~" or folder.startswith("~/"):
        folder = posixpath.join(home, folder[2:])
    elif not folder.startswith("/"):
        folder = posixpath.join(home, folder)
    return posixpath.normpath(folder)


class SshExecutor(SlurmExecutor):
    """Submit jobs to Slurm on a cluster that this machine reaches with ``ssh``.

    Connecting (once per process and cluster) checks that the cluster's Python environment
    can run this kernel's jobs.

    Parameters
    ----------
    folder
        The job folder on the cluster (``%j`` allowed): absolute, or in the remote home
        (``slurm_jobs``, ``~/slurm_jobs``). The nodes must see it (a shared filesystem).
    remote
        ``ssh://[user@]host[:port]``: any host the user's ``ssh`` reaches (an alias of
        ``~/.ssh/config`` too).
    max_num_timeout, max_pickle_size_gb
        As ``SlurmExecutor``'s.
    python
        The Python there that has this package installed (``python3``, ``~/env/bin/python``):
        it answers this kernel and runs the jobs.

    Raises
    ------
    RemoteUnreachable
        The cluster cannot be reached (``SshLoginError``: the login failed).
    RemoteEnvironmentError
        Its Python cannot run this kernel's jobs (the message says what to install where).
    """

    cluster: ClassVar[str] = "ssh"
    job_class: ClassVar[type[Job[Any]]] = SshJob

    def __init__(
        self,
        folder: str | Path,
        remote: str,
        max_num_timeout: int = 3,
        max_pickle_size_gb: float = 1.0,
        python: str | None = None,
    ) -> None:
        target = SshTarget.parse(remote)
        if target.folder:
            raise ValueError(
                f"{remote!r}: name the job folder as the executor's folder, not in the URL"
            )
        self.remote_python = python or DEFAULT_REMOTE_PYTHON
        self.remote: Remote = remote_for(target, self.remote_python)
        self.states: RemoteStates = states_of(self.remote)
        hello = self.remote.start()
        if not hello.get("sbatch"):
            raise RemoteEnvironmentError(
                f"sbatch is not on PATH on {self.remote.where}: is it a Slurm login node?"
            )
        self.remote_folder = remote_path(str(folder), str(hello["home"]))
        local = mirror_folder(self.remote.connection.identity, self.remote_folder)
        python_there = str(hello["executable"])
        super().__init__(local, max_num_timeout, max_pickle_size_gb, python=python_there)
        self._sources: dict[str, str] = {}

    @classmethod
    def _from_info(cls, info: JobInfo) -> Executor:
        where = info.remote or {}
        folder = where.get("folder", info.folder)
        timeouts, python = info.max_num_timeout, where.get("python")
        return cls(folder, where["target"], max_num_timeout=timeouts, python=python)

    @property
    def folder_on_nodes(self) -> str:
        """The job folder on the cluster (:attr:`folder` is its copy here)."""
        return self.remote_folder

    def attach_source(self, path: str, text: str) -> None:
        """Write ``text`` to ``path`` (a file of the job folder's ``cells/``, named as the nodes
        see it) on the cluster with the next submission: the jobs' tracebacks show the lines
        of the notebook cell they were defined in."""
        self._sources[path] = text

    def _start_jobs(self, pickled: list[Pickled], array: bool) -> tuple[Reservation, Any]:
        """Submit on the cluster, in one round trip (see the module docstring); an array's
        payloads as the one file they share (``array_payload``)."""
        sources, self._sources = self._sources, {}
        sizes = [item.size for item in pickled]
        shared = array_payload.shared_file(pickled) if array else None
        body = [_sender(item) for item in ([shared] if shared is not None else pickled)]
        header = {
            "op": "submit",
            "folder": self.remote_folder,
            "cluster": "slurm",
            "parameters": dict(self.parameters),
            "max_num_timeout": self.max_num_timeout,
            "max_pickle_size_gb": self.max_pickle_size_gb,
            "array": array,
            "sources": [{"name": Path(p).name, "text": t} for p, t in sources.items()],
            "sizes": sizes,
            "shared": None if shared is None else shared.size,
            "body": sum(sizes) if shared is None else shared.size,
        }
        try:
            answer, _ = self.states.request_jobs(header, body)
        except RemoteUnreachable as error:
            raise FailedSubmissionError(_broken_submission(self.remote.where, error)) from None
        return Reservation([str(job_id) for job_id in answer["ids"]], array), None


def _sender(item: Pickled | array_payload.SharedFile) -> Any:
    def send(writer: Writer) -> None:
        item.copy_to(writer.write, writer.send_file_range)

    return send


def _broken_submission(where: str, error: RemoteUnreachable) -> str:
    if getattr(error, "request_sent", True):
        return (
            f"{error}; the payload had reached {where}, so the job may have been submitted: "
            f"`%slurm_jobs --cluster ssh://{where}` lists the jobs there"
        )
    return f"{error}; the upload to {where} was cut short: nothing was submitted"
