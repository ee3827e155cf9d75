"""What the worker and its backend share: the signals, why a termination signal came, what the
worker needs from the backend (:class:`Runtime`), and the few things a signal handler may do
safely (write a line, flush, remember a signal for later).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn, Protocol

#: The signal a scheduler sends before preempting or timing out a job (submitit's convention).
CHECKPOINT_SIGNAL = signal.SIGUSR2
#: What Slurm sends when it ends a run: at the end of a preemption's grace time (the only notice
#: on clusters without ``preempt_send_user_signal``), at the time limit, and on ``scancel``.
TERMINATION_SIGNAL = signal.SIGTERM
#: Exit status of a run that was ended by a termination signal (128 + SIGTERM, as a shell says).
TERMINATED_EXIT_CODE = 128 + int(signal.SIGTERM)


@dataclass(frozen=True)
class Termination:
    """Why a termination signal came, as the scheduler tells it.

    Attributes
    ----------
    reason
        ``"preemption"``, ``"timeout"``, ``"cancelled"``, or ``"unknown"`` when the scheduler
        cannot tell (it could not be asked, or it is not ending the run): the checkpoint is
        written then, but the job is never requeued.
    requeued
        True when the scheduler has requeued the job already (a preemption with
        ``PreemptMode=REQUEUE``): the run checkpoints and leaves, Slurm starts the next one.
    detail
        Why the reason is ``"unknown"``, in words (the job records it).
    """

    reason: str
    requeued: bool = False
    detail: str = ""


class RequeueError(RuntimeError):
    """The scheduler did not take the job back into its queue (the message says why)."""


class Runtime(Protocol):
    """What the worker needs from its backend."""

    def signal_reason(self) -> str:
        """``"preemption"`` or ``"timeout"``: why the checkpoint signal was sent (``"unknown"``
        from a task other than 0 that could not learn it)."""

    def termination(self) -> Termination | None:
        """Why a termination signal came; None when the backend's own rules apply (it dies)."""

    def requeue(self, deadline: float) -> bool | None:
        """Ask for the job to be requeued, retrying until ``deadline`` (``time.monotonic``).

        Returns once the scheduler took the job (a backend that requeues on the run's exit
        returns at once): True when the scheduler had requeued it already. Raises
        :class:`RequeueError` if it never did.
        """

    def end_run(self) -> NoReturn:
        """Leave this run after a requeue: the next one starts from the new payload."""


# A signal that arrives before the payload is loaded is remembered, then handled.
early_signals: list[int] = []


def remember_early_signal(signum: int, frame: FrameType | None) -> None:
    """Signal handler for the time before the worker is ready (installed first thing)."""
    early_signals.append(signum)


def say(message: str, prefix: str = "jupyter_slurm_ckpt: ") -> None:
    """Write a line to the task's stderr from a signal handler.

    Straight to the file descriptor: the handler may have interrupted the job in the middle
    of a ``print``, and Python's buffered streams refuse to be entered again then.
    """
    with contextlib.suppress(OSError):
        os.write(2, f"{prefix}{message}\n".encode(errors="replace"))


def flush_output() -> None:
    """Flush what the job printed before its run ends (not possible, and skipped, when the
    signal interrupted a write of that same stream)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
