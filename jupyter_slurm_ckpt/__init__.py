"""jupyter_slurm_ckpt: run checkpointable work on Slurm (or locally) from a Jupyter notebook.

``import jupyter_slurm_ckpt as submitit`` runs submitit code unchanged, and after
``jupyter_slurm_ckpt.as_submitit()`` (or under ``python -m jupyter_slurm_ckpt.as_submitit
SCRIPT``) so does code that imports ``submitit`` itself; ``%load_ext jupyter_slurm_ckpt`` adds
the ``%%slurm`` magic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import helpers
from ._version import __version__ as __version__
from .backends.auto import AutoExecutor
from .backends.debug import DebugExecutor, DebugJob
from .backends.local import LocalExecutor, LocalJob
from .backends.slurm import SlurmExecutor, SlurmJob
from .backends.ssh import SshExecutor, SshJob
from .core.clean import CleanReport, clean
from .core.environment import JobEnvironment
from .core.errors import FailedJobError, FailedSubmissionError, UncompletedJobError
from .core.executor import Executor
from .core.helpers import Checkpointable, DelayedSubmission
from .core.job import Job
from .core.paths import JobPaths
from .core.progress import report_progress
from .core.registry import register_display
from .submitit_alias import as_submitit

if TYPE_CHECKING:
    from .verify import verify_checkpoint

__all__ = [
    "AutoExecutor",
    "Checkpointable",
    "CleanReport",
    "DebugExecutor",
    "DebugJob",
    "DelayedSubmission",
    "Executor",
    "FailedJobError",
    "FailedSubmissionError",
    "Job",
    "JobEnvironment",
    "JobPaths",
    "LocalExecutor",
    "LocalJob",
    "SlurmExecutor",
    "SlurmJob",
    "SshExecutor",
    "SshJob",
    "UncompletedJobError",
    "as_submitit",
    "clean",
    "helpers",
    "report_progress",
    "verify_checkpoint",
]


def __getattr__(name: str) -> Any:
    # The verifier loads on first use: jobs, which import this package, never need it.
    if name == "verify_checkpoint":
        from .verify import verify_checkpoint

        return verify_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _display_job(job: Job[Any]) -> dict[str, Any]:
    # The views load on the first display: jobs, which import this package, never need them.
    from .views.display import job_mimebundle

    return job_mimebundle(job)


register_display(_display_job)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_slurm_ckpt``: register the ``%%slurm`` magics."""
    from .notebook.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_slurm_ckpt``."""
    from .notebook.magic import unload_ipython_extension as unload

    unload(ipython)
