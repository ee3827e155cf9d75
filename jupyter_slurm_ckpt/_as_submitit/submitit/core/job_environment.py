"""``submitit.core.job_environment``, as jupyter_slurm_ckpt."""

from jupyter_slurm_ckpt.core.environment import JobEnvironment as JobEnvironment
from jupyter_slurm_ckpt.core.worker import SignalHandler as SignalHandler
