"""Checkpoint verification: run a call uninterrupted and with interrupts, compare, bisect.

:func:`verify_checkpoint` (``checkpoint``) plans the interrupts (``plan``), runs the call in its
own working directory each time (``run``, ``workdir``), compares the results (``judge``) and
words what it found (``report``).
"""

from .checkpoint import VerificationError, verify_checkpoint
from .judge import first_difference
from .plan import plan_interrupts
from .report import VerificationReport
from .workdir import CheckpointableRunInFolder, RunInFolder

__all__ = [
    "CheckpointableRunInFolder",
    "RunInFolder",
    "VerificationError",
    "VerificationReport",
    "first_difference",
    "plan_interrupts",
    "verify_checkpoint",
]
