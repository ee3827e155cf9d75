"""``AutoExecutor``: Slurm when ``srun`` is on PATH, else the local backend (or as asked).

Parameters as in submitit: the generic names (``timeout_min``, ``mem_gb``...) for every backend,
``<cluster>_<name>`` for one backend only (the others' are checked, then ignored); a
cluster-specific value wins over the generic one (``slurm_time`` over ``timeout_min`` on Slurm).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..core import payload, registry
from ..core.errors import UnknownParameterError
from ..core.executor import Executor
from ..core.helpers import DelayedSubmission
from ..core.job import Job
from ..core.parameters import GENERIC_PARAMETERS
from .ssh.target import is_ssh_url

CLUSTERS = ("slurm", "local", "debug", "ssh")
#: A backend whose parameters are another's: a cluster reached over SSH runs Slurm, so
#: ``slurm_partition`` is one of its parameters too.
_PARAMETERS_OF = {"ssh": "slurm"}

# Constructor arguments submitit still takes without a prefix (with a warning).
_DEPRECATED_ARGUMENTS = {"max_num_timeout": "slurm_max_num_timeout"}


def pick_cluster(cluster: str | None = None) -> str:
    """Resolve ``None``/``"auto"`` to ``"slurm"`` when ``srun`` is on PATH (submitit's test),
    else ``"local"``; ``ssh://host`` to ``"ssh"``."""
    if cluster in (None, "auto"):
        return "slurm" if shutil.which("srun") else "local"
    if is_ssh_url(cluster):
        if cluster == "ssh":
            raise ValueError("cluster='ssh' needs the host: cluster='ssh://[user@]login-node'")
        return "ssh"
    if cluster not in CLUSTERS:
        raise ValueError(
            f"unknown cluster {cluster!r}; choose one of auto, slurm, local, debug or "
            "ssh://[user@]host"
        )
    return cluster


class AutoExecutor:
    """submitit's ``AutoExecutor``: one code path for Slurm, local and debug runs.

    Parameters
    ----------
    folder
        Job folder (``%j`` allowed).
    cluster
        ``None``/``"auto"``, ``"slurm"``, ``"local"``, ``"debug"``, or
        ``"ssh://[user@]login-node"``: Slurm on a cluster reached with your ``ssh`` (``folder``
        is then a folder there, see ``SshExecutor``).
    **kwargs
        Constructor arguments of the chosen executor, prefixed with its name
        (``slurm_max_num_timeout=3``, ``local_python=...``, ``ssh_python="~/env/bin/python"``);
        others' prefixes are ignored.
    """

    def __init__(self, folder: str | Path, cluster: str | None = None, **kwargs: Any) -> None:
        self.cluster = pick_cluster(cluster)
        own_prefixes = self._own_prefixes()
        own: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in _DEPRECATED_ARGUMENTS:
                new = _DEPRECATED_ARGUMENTS[key]
                warnings.warn(f"Setting '{key}' is deprecated. Use '{new}' instead.", stacklevel=2)
                key = new
            prefix, _, name = key.partition("_")
            if prefix not in CLUSTERS or not name:
                raise UnknownParameterError(
                    f"AutoExecutor takes cluster-prefixed arguments (e.g. slurm_max_num_timeout), "
                    f"not {key!r}"
                )
            if prefix in own_prefixes:  # ssh_python wins over slurm_python: it is more specific
                own[name] = own[name] if name in own and prefix != self.cluster else value
        if self.cluster == "ssh":
            own["remote"] = cluster
        self._executor = registry.executor_class(self.cluster)(folder, **own)

    def _own_prefixes(self) -> tuple[str, ...]:
        """The prefixes of this cluster's arguments and parameters: its name, and for a cluster
        reached over SSH also ``slurm`` (``slurm_max_num_timeout`` applies there too)."""
        other = _PARAMETERS_OF.get(self.cluster)
        return (self.cluster,) if other is None else (self.cluster, other)

    @staticmethod
    def which() -> str:
        """The cluster ``AutoExecutor(folder)`` picks here: ``"slurm"`` or ``"local"``."""
        return pick_cluster()

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
        """Set generic parameters and ``<cluster>_<name>`` ones (other clusters' are checked
        against their backend, then ignored). A cluster-specific value wins over the generic
        one; an unprefixed cluster-specific name is taken with a warning, as in submitit.

        Raises
        ------
        UnknownParameterError
            Naming every unknown parameter, one a line (a ``ValueError`` and ``NameError``).
        InvalidParameterError
            On a bad value (a ``ValueError`` and ``AssertionError``).
        """
        valid = {c: set(registry.executor_class(c)._valid_parameters()) for c in CLUSTERS}
        generic: dict[str, Any] = {}
        own: dict[str, Any] = {}
        problems: list[str] = []
        own_prefixes = self._own_prefixes()
        for key, value in kwargs.items():
            prefix, _, name = key.partition("_")
            if key in GENERIC_PARAMETERS:
                generic[key] = value
            elif prefix in CLUSTERS and name:
                if name not in valid[prefix]:
                    problems.append(f"{key}: the {prefix} backend has no parameter {name!r}")
                elif prefix in own_prefixes:
                    own[name] = value
            elif any(key in valid[cluster] for cluster in CLUSTERS):
                cluster = self.cluster if key in valid[self.cluster] else next(
                    cluster for cluster in CLUSTERS if key in valid[cluster]
                )
                warnings.warn(
                    f"Setting '{key}' is deprecated. Use '{cluster}_{key}' instead.", stacklevel=2
                )
                if cluster == self.cluster:
                    own[key] = value
            else:
                problems.append(f"{key}: unknown parameter")
        if problems:
            mine = sorted(valid[self.cluster] - set(GENERIC_PARAMETERS))
            raise UnknownParameterError(
                "\n".join(
                    [
                        *problems,
                        f"generic parameters: {', '.join(sorted(GENERIC_PARAMETERS))}",
                        f"{self.cluster} parameters: "
                        + ", ".join(f"{self.cluster}_{name}" for name in mine),
                    ]
                )
            )
        aliases = self._executor.aliases
        mine_given = {aliases.get(name, name) for name in own}
        # submitit: the cluster-specific value wins over the generic one.
        generic = {k: v for k, v in generic.items() if aliases.get(k, k) not in mine_given}
        self._executor.update_parameters(**generic, **own)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job[Any]:
        """See ``Executor.submit``."""
        return self._executor.submit(fn, *args, **kwargs)

    def submit_array(
        self, fns: Sequence[Callable[[], Any] | DelayedSubmission[Any]]
    ) -> list[Job[Any]]:
        """See ``Executor.submit_array``."""
        return self._executor.submit_array(fns)

    def submit_pickled(self, pickled: list[payload.Pickled], array: bool) -> list[Job[Any]]:
        """See ``Executor.submit_pickled``."""
        return self._executor.submit_pickled(pickled, array)

    def map_array(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Job[Any]]:
        """See ``Executor.map_array``."""
        return self._executor.map_array(fn, *iterables)

    def batch(self, allow_implicit_submissions: bool = False) -> AbstractContextManager[None]:
        """See ``Executor.batch``."""
        return self._executor.batch(allow_implicit_submissions)

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - guard against misuse
        raise TypeError("AutoExecutor is not iterable")
