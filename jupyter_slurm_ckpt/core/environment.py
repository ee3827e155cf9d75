"""``JobEnvironment``: what a running job knows about itself (ids, rank, restart count)."""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from pathlib import Path

from .info import JobInfo
from .nodelist import parse_nodelist
from .paths import JobPaths

# Variables every backend sets for the worker (the local backend has no scheduler to ask).
ENV_JOB_ID = "JSC_JOB_ID"
ENV_FOLDER = "JSC_JOB_FOLDER"
ENV_TASK_ID = "JSC_TASK_ID"
ENV_NUM_TASKS = "JSC_NUM_TASKS"
ENV_CLUSTER = "JSC_CLUSTER"
# The local backend's emulated nodes (Slurm says these in SLURM_NODEID, SLURM_LOCALID and
# SLURM_JOB_NUM_NODES; ours win, so a local job started inside a Slurm job is not misread).
ENV_NODE_ID = "JSC_NODE_ID"
ENV_LOCAL_ID = "JSC_LOCAL_ID"
ENV_NUM_NODES = "JSC_NUM_NODES"
ENV_RESTART_COUNT = "SLURM_RESTART_COUNT"


def set_worker_environment(
    info: JobInfo,
    paths: JobPaths,
    restart: int | None,
    environ: MutableMapping[str, str] = os.environ,
) -> None:
    """Set what every backend's worker runs with (and :class:`JobEnvironment` reads): the job's
    id, folder, task (``paths.task_id``), number of tasks and backend.

    ``restart`` is the run's restart count, for a backend that counts its runs itself (the
    local and debug ones): ``SLURM_RESTART_COUNT`` is set to it, and unset on the first run, as
    Slurm does; None leaves it to Slurm.
    """
    environ.update(
        {
            ENV_JOB_ID: info.job_id,
            ENV_FOLDER: str(paths.folder),
            ENV_TASK_ID: str(paths.task_id),
            ENV_NUM_TASKS: str(info.num_tasks),
            ENV_CLUSTER: info.cluster,
        }
    )
    if restart is None:
        return
    if restart:
        environ[ENV_RESTART_COUNT] = str(restart)
    else:
        environ.pop(ENV_RESTART_COUNT, None)


def set_emulated_node(
    task: int, num_tasks: int, nodes: int, environ: MutableMapping[str, str] = os.environ
) -> int:
    """Place task ``task`` of ``num_tasks`` on one of ``nodes`` emulated nodes as Slurm's default
    (block) distribution does: tasks 0..k-1 on node 0, k..2k-1 on node 1... Sets what
    :class:`JobEnvironment` reads (node, rank on the node, number of nodes); returns the node.
    """
    nodes = max(1, min(nodes, num_tasks))
    per_node = max(1, num_tasks // nodes)
    node, local_rank = divmod(task, per_node)
    environ.update(
        {ENV_NODE_ID: str(node), ENV_LOCAL_ID: str(local_rank), ENV_NUM_NODES: str(nodes)}
    )
    return node


def _int_env(*names: str, default: int = 0) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return default


class JobEnvironment:
    """Describe the job this process runs in. Outside a job, :attr:`activated` is False."""

    @property
    def activated(self) -> bool:
        """Whether this process runs inside a job of ours."""
        return ENV_JOB_ID in os.environ

    @property
    def cluster(self) -> str:
        """The backend running this job: ``local``, ``slurm`` or ``debug``."""
        return os.environ.get(ENV_CLUSTER, "slurm" if "SLURM_JOB_ID" in os.environ else "local")

    @property
    def job_id(self) -> str:
        """The job id (``A_a`` for an array element)."""
        return os.environ.get(ENV_JOB_ID) or os.environ.get("SLURM_JOB_ID", "0")

    @property
    def raw_job_id(self) -> str:
        """The scheduler's own id of this allocation."""
        return os.environ.get("SLURM_JOB_ID", self.job_id)

    @property
    def array_job_id(self) -> str | None:
        """The array's id when this job is an array element."""
        head, sep, _ = self.job_id.partition("_")
        return head if sep else None

    @property
    def array_task_id(self) -> int | None:
        """This element's index in its array."""
        _, sep, tail = self.job_id.partition("_")
        return int(tail) if sep and tail.isdigit() else None

    @property
    def global_rank(self) -> int:
        """Rank of this task among all tasks of the job."""
        return _int_env(ENV_TASK_ID, "SLURM_PROCID")

    @property
    def local_rank(self) -> int:
        """Rank of this task on its node."""
        return _int_env(ENV_LOCAL_ID, "SLURM_LOCALID", ENV_TASK_ID)

    @property
    def num_tasks(self) -> int:
        """Number of tasks of the job."""
        return _int_env(ENV_NUM_TASKS, "SLURM_NTASKS", default=1)

    @property
    def num_nodes(self) -> int:
        """Number of nodes of the allocation."""
        return _int_env(ENV_NUM_NODES, "SLURM_JOB_NUM_NODES", default=1)

    @property
    def node(self) -> int:
        """Index of this node in the allocation."""
        return _int_env(ENV_NODE_ID, "SLURM_NODEID")

    @property
    def hostname(self) -> str:
        """Name of the machine this task runs on."""
        return socket.gethostname()

    @property
    def hostnames(self) -> list[str]:
        """The machines of the job's allocation, the first one first (``SLURM_JOB_NODELIST``
        expanded); for a local or debug job (or without a node list), this machine once per
        node (emulated nodes are this machine)."""
        nodelist = os.environ.get("SLURM_JOB_NODELIST", "")
        if self.cluster != "slurm" or not nodelist:
            return [self.hostname] * self.num_nodes
        return parse_nodelist(nodelist)

    @property
    def restart_count(self) -> int:
        """How many times the job was requeued before this run (0 on the first run)."""
        return _int_env(ENV_RESTART_COUNT)

    @property
    def paths(self) -> JobPaths:
        """The job's files."""
        folder = Path(os.environ.get(ENV_FOLDER, "."))
        return JobPaths(folder.absolute(), self.job_id, self.global_rank)

    def __repr__(self) -> str:
        return (
            f"JobEnvironment(job_id={self.job_id}, cluster={self.cluster}, "
            f"global_rank={self.global_rank}, local_rank={self.local_rank}, node={self.node}, "
            f"num_nodes={self.num_nodes}, num_tasks={self.num_tasks}, "
            f"restart_count={self.restart_count})"
        )
