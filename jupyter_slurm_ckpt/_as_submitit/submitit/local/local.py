"""``submitit.local.local``, as jupyter_slurm_ckpt."""

from jupyter_slurm_ckpt.backends.local import LocalExecutor as LocalExecutor
from jupyter_slurm_ckpt.backends.local import LocalJob as LocalJob
