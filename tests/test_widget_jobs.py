"""Callables the widget tests submit; the notebook-based tests paste this file into a cell."""

import pathlib
import time

from jupyter_slurm_ckpt import Checkpointable, DelayedSubmission


class Waiter(Checkpointable):
    """Counts until a release file appears (at most 240 s); its checkpoint keeps the count."""

    def __call__(self, release, count=0):
        deadline = time.time() + 240
        while not pathlib.Path(release).exists() and time.time() < deadline:
            count += 1
            self.count = count
            print("tick", count, flush=True)
            time.sleep(0.1)
        return {"ticks": count}

    def checkpoint(self, release, count=0):
        return DelayedSubmission(Waiter(), release, getattr(self, "count", count))


def echo(value):
    """Returns its argument (a result for the result view)."""
    return value


def fail(message):
    """Raises, so the job ends with a remote traceback."""
    raise ValueError(message)
