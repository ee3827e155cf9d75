"""``submitit.local.debug``, as jupyter_slurm_ckpt."""

from jupyter_slurm_ckpt.backends.debug import DebugExecutor as DebugExecutor
from jupyter_slurm_ckpt.backends.debug import DebugJob as DebugJob
