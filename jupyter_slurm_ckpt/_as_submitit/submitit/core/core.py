"""``submitit.core.core``, as jupyter_slurm_ckpt."""

from jupyter_slurm_ckpt.core.awaitable import AsyncJobProxy as AsyncJobProxy
from jupyter_slurm_ckpt.core.batch import DelayedJob as DelayedJob
from jupyter_slurm_ckpt.core.executor import Executor as Executor
from jupyter_slurm_ckpt.core.job import Job as Job
from jupyter_slurm_ckpt.core.job import R as R

PicklingExecutor = Executor  # submitit's base of its executors; ours is one class
