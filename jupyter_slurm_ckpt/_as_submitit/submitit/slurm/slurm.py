"""``submitit.slurm.slurm``, as jupyter_slurm_ckpt."""

from jupyter_slurm_ckpt.backends.slurm import SlurmExecutor as SlurmExecutor
from jupyter_slurm_ckpt.backends.slurm import SlurmJob as SlurmJob
from jupyter_slurm_ckpt.core.environment import JobEnvironment
from jupyter_slurm_ckpt.core.nodelist import NodeListError

SlurmJobEnvironment = JobEnvironment  # one JobEnvironment reads every backend's job
SlurmParseException = NodeListError
