"""The switch that makes ``import submitit`` mean this package, here and in every process
started from here.

Code written for submitit imports ``submitit`` itself (a launcher, a library, a research
repository), and it does so inside the job too (``checkpoint()`` often says ``import
submitit``). So the switch is a folder, ``_as_submitit/``, holding a package named ``submitit``
whose modules map submitit 1.5.4's public names to ours. :func:`as_submitit` puts that folder
on ``sys.path`` before the installed packages, and first on ``PYTHONPATH``: every Python
process the program starts (job processes of every backend, their requeued runs, ``srun``
tasks, a launcher's helper processes) finds the same package before the real submitit, which is
then neither imported nor changed.
Without the switch nothing of this is on any path.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

#: The folder that holds the ``submitit`` package of the switch.
SWITCH_PATH = Path(__file__).resolve().parent / "_as_submitit"


class SubmititAlreadyImportedError(RuntimeError):
    """The real submitit was imported before the switch: its objects cannot change identity."""


def switched_on() -> bool:
    """Whether ``import submitit`` means this package in this process."""
    module = sys.modules.get("submitit")
    if module is None:
        return str(SWITCH_PATH) in sys.path
    return _is_ours(module)


def _is_ours(module: object) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(SWITCH_PATH)


def as_submitit() -> None:
    """Make ``import submitit`` mean ``jupyter_slurm_ckpt``, here and in every process started
    from here (the jobs of every backend included).

    Call it before anything imports submitit: in a notebook, in its first cell; for a script,
    ``python -m jupyter_slurm_ckpt.as_submitit SCRIPT [ARGS...]`` does it first. Calling it
    again does nothing.

    Raises
    ------
    SubmititAlreadyImportedError
        When the real submitit is imported already: objects made from it would stay submitit's
        (restart the kernel or the program and switch first).
    """
    loaded = sys.modules.get("submitit")
    if loaded is not None and not _is_ours(loaded):
        raise SubmititAlreadyImportedError(
            f"submitit is imported already (from {getattr(loaded, '__file__', '?')}): call "
            "jupyter_slurm_ckpt.as_submitit() before anything imports submitit (restart the "
            "kernel, then switch in the first cell), or run the program with python -m "
            "jupyter_slurm_ckpt.as_submitit"
        )
    path = str(SWITCH_PATH)
    if path not in sys.path:
        # Where PYTHONPATH puts it in the processes started from here: after the program's own
        # folder (sys.path[0]), before every installed package.
        sys.path.insert(1 if sys.path else 0, path)
        importlib.invalidate_caches()
    inherited = os.environ.get("PYTHONPATH", "")
    if path not in inherited.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [path, inherited]))
