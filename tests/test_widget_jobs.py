"""Callables the widget tests submit; the notebook-based tests paste this file into a cell."""

import pathlib
import sys
import time

from jupyter_slurm_ckpt import Checkpointable, DelayedSubmission, report_progress


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


class Stepper(Checkpointable):
    """Reports ``step``/``total`` every step; waits at ``pause_at`` until the release file
    appears (at most 240 s). Its checkpoint keeps the step, so a requeue resumes there."""

    def __init__(self):
        self.step = 0

    def __call__(self, total, release, pause_at):
        report_progress(step=self.step, total=total)  # where this run starts
        deadline = time.time() + 240
        while self.step < total:
            if self.step == pause_at and not pathlib.Path(release).exists():
                if time.time() > deadline:
                    break
                time.sleep(0.02)
                continue
            self.step += 1
            report_progress(step=self.step, total=total, loss=round(1 / self.step, 3))
            time.sleep(0.002)
        return self.step


def tqdm_loop(steps, release, pause_at):
    """A loop with a tqdm bar on stderr (a redraw per step) and a coloured line on stdout;
    waits at ``pause_at`` until the release file appears (at most 240 s)."""
    from tqdm import tqdm

    print("\x1b[1;32mtraining started\x1b[0m on \x1b[34mthe local backend\x1b[0m", flush=True)
    deadline = time.time() + 240
    with tqdm(total=steps, desc="train", mininterval=0, file=sys.stderr) as bar:
        for step in range(steps):
            while step == pause_at and not pathlib.Path(release).exists():
                if time.time() > deadline:
                    break
                time.sleep(0.02)
            bar.update(1)
            time.sleep(0.002)
    print("training done", flush=True)
    return steps
