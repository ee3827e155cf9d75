"""Kept for kernels still running an earlier version, which start their agent as ``python -m
jupyter_slurm_ckpt.backends.local_agent SOCKET``. The agent is ``local.agent`` now.
"""

import sys
from pathlib import Path

from .local.agent import serve

if __name__ == "__main__":
    serve(Path(sys.argv[1]))
