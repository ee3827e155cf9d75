"""``TorchDistributedEnvironment``: the ``env://`` rendezvous variables of ``torch.distributed``,
from the job's own environment (Slurm's variables, or the local backend's). No torch import."""

from __future__ import annotations

import hashlib
import os

from .environment import JobEnvironment

#: Where a port derived from the job id falls (clear of the usual service ports).
_PORT_RANGE = (20000, 60000)


class TorchDistributedEnvironment:
    """``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
    ``LOCAL_WORLD_SIZE`` of this task, as submitit's class of that name computes them.

    The master is the first host of the allocation; its port is ``MASTER_PORT`` when set, else
    one derived from the job id (the same in every task of the job).

    Examples
    --------
    >>> env = TorchDistributedEnvironment().export()      # doctest: +SKIP
    >>> torch.distributed.init_process_group("nccl")      # doctest: +SKIP
    """

    def __init__(self) -> None:
        job = JobEnvironment()
        self.master_addr = job.hostnames[0]
        self.master_port = _master_port(job.job_id)
        self.rank = job.global_rank
        self.world_size = job.num_tasks
        self.local_rank = job.local_rank
        self.local_world_size = max(1, job.num_tasks // max(1, job.num_nodes))

    def variables(self) -> dict[str, str]:
        """The variables :meth:`export` sets (without ``CUDA_VISIBLE_DEVICES``)."""
        return {
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
        }

    def export(
        self, set_cuda_visible_devices: bool = True, overwrite: bool = False
    ) -> TorchDistributedEnvironment:
        """Set the variables in ``os.environ``; returns ``self``.

        Parameters
        ----------
        set_cuda_visible_devices
            Also make ``CUDA_VISIBLE_DEVICES`` this task's own GPU (one per task): see
            :meth:`own_gpu`.
        overwrite
            Replace variables already set (else a set one raises ``RuntimeError``: a job
            started from inside another job would otherwise join the wrong group).
        """
        variables = self.variables()
        if not overwrite:
            already = [name for name in variables if name in os.environ]
            if already:
                raise RuntimeError(
                    f"{', '.join(already)} already set: export(overwrite=True) replaces them "
                    "(or submit from within helpers.clean_env())"
                )
        if set_cuda_visible_devices:
            variables["CUDA_VISIBLE_DEVICES"] = self.own_gpu()
        os.environ.update(variables)
        return self

    def own_gpu(self) -> str:
        """This task's GPU: the ``local_rank``-th of those its node sees (``CUDA_VISIBLE_DEVICES``
        as the scheduler set it: an emulated local node sees GPUs of its own, 2 and 3 say),
        else ``local_rank`` itself (submitit's choice)."""
        visible = [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu]
        if self.local_rank < len(visible):
            return visible[self.local_rank]
        return str(self.local_rank)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value}" for key, value in self.variables().items())
        return f"TorchDistributedEnvironment({fields})"


def _master_port(job_id: str) -> int:
    given = os.environ.get("MASTER_PORT")
    if given:
        return int(given)
    low, high = _PORT_RANGE
    digest = hashlib.sha256(job_id.encode()).digest()
    return low + int.from_bytes(digest[:4], "big") % (high - low + 1)
