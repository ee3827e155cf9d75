"""Slurm backend (sbatch). Its implementation is tracked in its own issue."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..core.executor import Executor
from ..core.job import Job


class SlurmJob(Job[Any]):
    """A job submitted to Slurm."""

    cluster: ClassVar[str] = "slurm"


class SlurmExecutor(Executor):
    """Submit jobs to Slurm with sbatch."""

    cluster: ClassVar[str] = "slurm"
    job_class: ClassVar[type[Job[Any]]] = SlurmJob

    def __init__(self, folder: str | Path, max_num_timeout: int = 3, **kwargs: Any) -> None:
        super().__init__(folder, max_num_timeout=max_num_timeout)

    def _allocate_job_ids(self, count: int, array: bool) -> list[str]:
        raise NotImplementedError("the Slurm backend is not available yet")

    def _launch(self, job_ids: list[str]) -> None:
        raise NotImplementedError("the Slurm backend is not available yet")
