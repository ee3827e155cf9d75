"""``AutoExecutor``: Slurm when ``sbatch`` is on PATH, else the local backend."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..core import payload
from ..core.executor import GENERIC_PARAMETERS, Executor
from ..core.helpers import DelayedSubmission
from ..core.job import Job

CLUSTERS = ("slurm", "local", "debug")

# Prefixed parameters that also apply when a Slurm-minded script falls back to local:
# the local backend emulates Slurm, so its timeouts and warning delay should match.
_SHARED_WITH_LOCAL = ("max_num_timeout", "signal_delay_s", "array_parallelism")


def pick_cluster(cluster: str | None = None) -> str:
    """Resolve ``None``/``"auto"`` to ``"slurm"`` when ``sbatch`` is available, else ``"local"``."""
    if cluster in (None, "auto"):
        return "slurm" if shutil.which("sbatch") else "local"
    if cluster not in CLUSTERS:
        raise ValueError(f"unknown cluster {cluster!r}; choose one of auto, {', '.join(CLUSTERS)}")
    return cluster


def executor_class(cluster: str) -> type[Executor]:
    """The executor class of a backend (imported on first use)."""
    if cluster == "slurm":
        from .slurm import SlurmExecutor

        return SlurmExecutor
    if cluster == "debug":
        from .debug import DebugExecutor

        return DebugExecutor
    from .local import LocalExecutor

    return LocalExecutor


class AutoExecutor:
    """submitit's ``AutoExecutor``: one code path for Slurm, local and debug runs.

    Parameters
    ----------
    folder
        Job folder (``%j`` allowed).
    cluster
        ``None``/``"auto"``, ``"slurm"``, ``"local"`` or ``"debug"``.
    **kwargs
        Constructor arguments of the chosen executor, prefixed with its name
        (``slurm_max_num_timeout=3``, ``local_python=...``); others' prefixes are ignored.
    """

    def __init__(self, folder: str | Path, cluster: str | None = None, **kwargs: Any) -> None:
        self.cluster = pick_cluster(cluster)
        own: dict[str, Any] = {}
        for key, value in kwargs.items():
            prefix, _, name = key.partition("_")
            if prefix not in CLUSTERS or not name:
                raise ValueError(
                    f"AutoExecutor takes cluster-prefixed arguments (e.g. slurm_max_num_timeout), "
                    f"not {key!r}"
                )
            if prefix == self.cluster or (
                self.cluster == "local"
                and prefix == "slurm"
                and name == "max_num_timeout"
                and "local_max_num_timeout" not in kwargs
            ):
                own[name] = value
        self._executor = executor_class(self.cluster)(folder, **own)

    @property
    def folder(self) -> Path:
        """The job folder."""
        return self._executor.folder

    @property
    def executor(self) -> Executor:
        """The backend executor doing the work."""
        return self._executor

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters set so far."""
        return self._executor.parameters

    def update_parameters(self, **kwargs: Any) -> None:
        """Set generic parameters and ``<cluster>_<name>`` ones (other clusters' are ignored).

        Raises
        ------
        ValueError
            On a name that no backend knows, with the valid names of the chosen one.
        """
        chosen: dict[str, Any] = {}
        valid = self._executor._valid_parameters()
        for key, value in kwargs.items():
            prefix, _, name = key.partition("_")
            if key in GENERIC_PARAMETERS:
                chosen[key] = value
            elif prefix == self.cluster and name:
                chosen[name] = value
            elif prefix in CLUSTERS and name:
                if self.cluster == "local" and prefix == "slurm" and name in _SHARED_WITH_LOCAL:
                    chosen.setdefault(name, value)
            else:
                own = sorted(set(valid) - set(GENERIC_PARAMETERS))
                raise ValueError(
                    f"unknown parameter {key!r}; generic parameters: "
                    f"{', '.join(sorted(GENERIC_PARAMETERS))}; {self.cluster} parameters: "
                    f"{', '.join(f'{self.cluster}_{name}' for name in own)}"
                )
        self._executor.update_parameters(**chosen)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job[Any]:
        """See ``Executor.submit``."""
        return self._executor.submit(fn, *args, **kwargs)

    def submit_array(self, submissions: list[DelayedSubmission[Any]]) -> list[Job[Any]]:
        """See ``Executor.submit_array``."""
        return self._executor.submit_array(submissions)

    def submit_pickled(self, pickled: list[payload.Pickled], array: bool) -> list[Job[Any]]:
        """See ``Executor.submit_pickled``."""
        return self._executor.submit_pickled(pickled, array)

    def map_array(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Job[Any]]:
        """See ``Executor.map_array``."""
        return self._executor.map_array(fn, *iterables)

    def batch(self) -> AbstractContextManager[None]:
        """See ``Executor.batch``."""
        return self._executor.batch()

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - guard against misuse
        raise TypeError("AutoExecutor is not iterable")
