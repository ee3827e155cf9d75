"""``whole_step()``: a checkpoint sees the training state between two steps, never inside one.

The checkpoint signal runs ``checkpoint()`` wherever the job's main thread is. A loop that
replaces its state in one assignment per step (the numpy notebooks) needs nothing more; a
torch loop updates its model and optimizer in place, a tensor at a time, and a checkpoint
taken inside ``optimizer.step()`` would save half a step. Inside ``with whole_step():`` the
checkpoint and termination signals wait: one that arrives is handled as the block ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from .worker import CHECKPOINT_SIGNAL, TERMINATION_SIGNAL


@contextlib.contextmanager
def whole_step() -> Iterator[None]:
    """Hold the checkpoint (USR2) and termination (TERM) signals for the block.

    A signal that arrives inside the block is handled when the block ends, as it would have
    been then, so ``checkpoint()`` sees the state before a step or after it. Keep a step short
    beside the signal's notice (``signal_delay_s``; Slurm's ``KillWait`` after a TERM). Costs
    a few microseconds a step; outside the main thread (where no handler runs) it holds
    nothing.

    Examples
    --------
    >>> for batch in batches:                    # doctest: +SKIP
    ...     with whole_step():
    ...         loss = model(batch).sum()
    ...         loss.backward()
    ...         optimizer.step()
    ...         optimizer.zero_grad()
    ...         self.step += 1
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    signums: tuple[int, ...] = (CHECKPOINT_SIGNAL, TERMINATION_SIGNAL)
    previous = {signum: signal.signal(signum, hold) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held:
            _deliver(signum, previous[signum])


def _deliver(signum: int, handler: object) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:  # the default action, as if it came now
        os.kill(os.getpid(), signum)
