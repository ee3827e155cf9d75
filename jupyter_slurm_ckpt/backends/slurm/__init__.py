"""The Slurm backend: ``sbatch`` to submit, ``sacct``/``squeue``/``scontrol`` to follow.

The submitting side: ``executor`` (``SlurmExecutor``; the sbatch options and batch script:
``parameters``, ``script``, ``long_options``), ``job`` (``SlurmJob``, seen from any process),
``state`` (what Slurm says, cached and polled politely: ``records``, ``commands``). The side that
runs in the allocation: ``task`` (the batch script's worker) and ``signals`` (why a signal came).
"""

from .executor import SlurmExecutor
from .job import SlurmJob

__all__ = ["SlurmExecutor", "SlurmJob"]
