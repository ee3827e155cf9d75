"""The local backend: jobs as real processes of this machine that behave like Slurm jobs.

The submitting side: ``executor`` (``LocalExecutor``), ``job`` (``LocalJob``, seen from any
process), ``agent_client`` and ``agent`` (the user's warm launcher of controllers). The side that
runs the job: ``controller``, one process per job that plays the scheduler for its worker.
"""

from .executor import LocalExecutor
from .job import LocalJob

__all__ = ["LocalExecutor", "LocalJob"]
