"""submitit-compatible ``helpers`` module (``jupyter_slurm_ckpt.helpers.DelayedSubmission``...)."""

from .core.distributed import TorchDistributedEnvironment
from .core.helpers import (
    Checkpointable,
    CommandFunction,
    DelayedSubmission,
    FunctionSequence,
    as_completed,
    clean_env,
    environment_variables,
    monitor_jobs,
)
from .core.snapshot import RsyncSnapshot
from .core.steps import whole_step

__all__ = [
    "Checkpointable",
    "CommandFunction",
    "DelayedSubmission",
    "FunctionSequence",
    "RsyncSnapshot",
    "TorchDistributedEnvironment",
    "as_completed",
    "clean_env",
    "environment_variables",
    "monitor_jobs",
    "whole_step",
]
