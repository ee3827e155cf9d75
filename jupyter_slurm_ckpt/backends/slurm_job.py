"""Kept for batch scripts written by earlier versions: ``python -m
jupyter_slurm_ckpt.backends.slurm_job FOLDER`` (a requeued job runs its batch script again).
The entry point is ``slurm.task`` now.
"""

import sys

from .slurm.task import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
