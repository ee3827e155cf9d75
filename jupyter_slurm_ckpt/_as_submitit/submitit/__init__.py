"""``submitit``, as jupyter_slurm_ckpt: what ``import submitit`` finds under the switch.

This folder's parent is put first on ``sys.path`` (and on ``PYTHONPATH``, for every process the
program starts) by ``jupyter_slurm_ckpt.as_submitit()`` and ``python -m
jupyter_slurm_ckpt.as_submitit``; nowhere else. Each module maps submitit 1.5.4's public names
at their submitit path to this package's objects: the same objects, so a job submitted through
one name is the job seen through the other, and a pickle naming either loads.
"""

from jupyter_slurm_ckpt.backends.auto import AutoExecutor as AutoExecutor
from jupyter_slurm_ckpt.backends.debug import DebugExecutor as DebugExecutor
from jupyter_slurm_ckpt.backends.debug import DebugJob as DebugJob
from jupyter_slurm_ckpt.backends.local import LocalExecutor as LocalExecutor
from jupyter_slurm_ckpt.backends.local import LocalJob as LocalJob
from jupyter_slurm_ckpt.backends.slurm import SlurmExecutor as SlurmExecutor
from jupyter_slurm_ckpt.backends.slurm import SlurmJob as SlurmJob
from jupyter_slurm_ckpt.core.environment import JobEnvironment as JobEnvironment
from jupyter_slurm_ckpt.core.executor import Executor as Executor
from jupyter_slurm_ckpt.core.job import Job as Job

from . import helpers as helpers

#: The submitit API this package implements (code that checks submitit's version reads this);
#: ``jupyter_slurm_ckpt.__version__`` is the package's own.
__version__ = "1.5.4"
