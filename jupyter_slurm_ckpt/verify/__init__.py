"""Checkpoint verification: run a call uninterrupted and with interrupts, compare, bisect.

See :func:`verify_checkpoint`.
"""

from .checkpoint import (
    CheckpointableRunInFolder,
    RunInFolder,
    VerificationError,
    first_difference,
    plan_interrupts,
    verify_checkpoint,
)
from .report import VerificationReport

__all__ = [
    "CheckpointableRunInFolder",
    "RunInFolder",
    "VerificationError",
    "VerificationReport",
    "first_difference",
    "plan_interrupts",
    "verify_checkpoint",
]
