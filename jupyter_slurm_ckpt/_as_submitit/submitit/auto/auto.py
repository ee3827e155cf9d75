"""``submitit.auto.auto``, as jupyter_slurm_ckpt."""

from jupyter_slurm_ckpt.backends.auto import AutoExecutor as AutoExecutor
