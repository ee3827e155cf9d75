"""Slurm's client commands as the backend runs them: a command that hangs says why it hangs."""

from __future__ import annotations

import sys

import pytest

from jupyter_slurm_ckpt.backends.slurm.commands import SchedulerError, run_command

# What sbatch prints, and then retries for ever, while slurmctld holds MaxJobCount jobs.
FULL = "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying"


def test_a_command_that_does_not_answer_says_what_it_said_meanwhile() -> None:
    # A real process standing in for sbatch (a full controller cannot be had on demand).
    hanging = [sys.executable, "-c",
               f"import sys, time; print({FULL!r}, file=sys.stderr, flush=True); time.sleep(60)"]
    with pytest.raises(SchedulerError, match="did not answer within 2 s: sbatch: error: Slurm "
                       "temporarily unable to accept job"):
        run_command(hanging, timeout=2)
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(SchedulerError, match=r"did not answer within 1 s$"):
        run_command(silent, timeout=1)
