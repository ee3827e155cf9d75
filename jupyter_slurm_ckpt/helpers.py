"""submitit-compatible ``helpers`` module (``jupyter_slurm_ckpt.helpers.DelayedSubmission``...)."""

from .core.helpers import (
    Checkpointable,
    CommandFunction,
    DelayedSubmission,
    FunctionSequence,
    as_completed,
    clean_env,
)

__all__ = [
    "Checkpointable",
    "CommandFunction",
    "DelayedSubmission",
    "FunctionSequence",
    "as_completed",
    "clean_env",
]
