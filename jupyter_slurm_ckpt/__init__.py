"""jupyter_slurm_ckpt: run checkpointable work on Slurm (or locally) from a Jupyter notebook.

``import jupyter_slurm_ckpt as submitit`` runs submitit code unchanged; ``%load_ext
jupyter_slurm_ckpt`` adds the ``%%slurm`` magic.
"""

from __future__ import annotations

from typing import Any

from . import helpers
from .backends.auto import AutoExecutor
from .backends.debug import DebugExecutor, DebugJob
from .backends.local import LocalExecutor, LocalJob
from .backends.slurm import SlurmExecutor, SlurmJob
from .core.environment import JobEnvironment
from .core.errors import FailedJobError, FailedSubmissionError, UncompletedJobError
from .core.executor import Executor
from .core.helpers import Checkpointable, DelayedSubmission
from .core.job import Job
from .core.paths import JobPaths

__version__ = "0.1.0"

__all__ = [
    "AutoExecutor",
    "Checkpointable",
    "DebugExecutor",
    "DebugJob",
    "DelayedSubmission",
    "Executor",
    "FailedJobError",
    "FailedSubmissionError",
    "Job",
    "JobEnvironment",
    "JobPaths",
    "LocalExecutor",
    "LocalJob",
    "SlurmExecutor",
    "SlurmJob",
    "UncompletedJobError",
    "helpers",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_slurm_ckpt``: register the ``%%slurm`` magics."""
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_slurm_ckpt``."""
    from .magic import unload_ipython_extension as unload

    unload(ipython)
