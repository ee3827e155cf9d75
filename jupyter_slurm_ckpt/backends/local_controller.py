"""Kept for kernels still running an earlier version, which start controllers as ``python -m
jupyter_slurm_ckpt.backends.local_controller FOLDER PARALLELISM ID [ID...]``. The controller
is ``local.controller`` now.
"""

import sys

from .local.controller import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
