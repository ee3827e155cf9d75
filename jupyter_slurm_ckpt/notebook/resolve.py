"""From the parsed options to a submission: defaults filled in from the config, checks that need
the environment, the executor they build (touching no file).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.auto import AutoExecutor, pick_cluster
from ..backends.ssh.target import SCHEME, SshTarget
from ..core.payload import MB
from .config import SlurmConfig
from .options import OPTIONS, Option, OptionError, dest


@dataclass
class SubmitOptions:
    """The options of one ``%%slurm`` run, defaults filled in and checked."""

    cluster: str
    requested_cluster: str
    folder: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    max_num_timeout: int = 3
    by_value: tuple[str, ...] = ()
    widget: bool = True
    dry_run: bool = False
    verify_checkpoint: int | None = None
    max_payload_bytes: int = 100 * MB
    warn_global_bytes: int = 10 * MB
    ignored: tuple[str, ...] = ()  # Slurm-only options the chosen backend does not use
    #: ``ssh://...`` of a cluster reached over SSH (``cluster`` is then ``ssh``, ``folder``
    #: a folder there), and the Python there.
    remote: str | None = None
    remote_python: str = "python3"

# Options that become executor parameters: trait -> parameter name ("{c}": the cluster).
_PARAMETERS = {
    "timeout": "timeout_min",
    "mem_gb": "mem_gb",
    "nodes": "nodes",
    "cpus_per_task": "cpus_per_task",
    "gpus_per_node": "gpus_per_node",
    "tasks_per_node": "tasks_per_node",
    "name": "name",
    "signal_delay_s": "{c}_signal_delay_s",
    "partition": "slurm_partition",
    "setup": "{c}_setup",
    "sbatch": "slurm_additional_parameters",
}

_SLURM_ONLY = ("partition", "sbatch")

# Shell lines run before the job: Slurm's batch script and the local backend run them; the
# debug backend runs the job inside this very process.
_NOT_IN_DEBUG = ("setup",)


def resolve(args: argparse.Namespace, config: SlurmConfig) -> SubmitOptions:
    """Merge parsed arguments over the config defaults and check what needs the environment.

    Raises
    ------
    OptionError
        ``--cluster slurm`` without ``sbatch``, a ``--by-value`` module that cannot be found,
        or a bad config value.
    """
    values = _merged(args, config)
    requested = values["cluster"]
    remote = remote_of(requested, config.remote)
    cluster = "ssh" if remote else _cluster_here(requested)
    for module in values["by_value"]:
        _check_module(module)
    if remote and getattr(args, "folder", None) is None:
        values["folder"] = config.remote_folder  # the job root there
    if remote and values["verify_checkpoint"] is not None:
        raise OptionError(
            "--verify-checkpoint runs its runs in this machine's folders: verify on your laptop "
            "with --cluster local (the same behaviour), then submit to the cluster"
        )
    if not str(values["folder"]).strip():
        raise OptionError("--folder must not be empty")
    parameters, ignored = _parameters(values, cluster)
    if cluster == "local" and config.local_slots is not None:
        parameters["local_slots"] = config.local_slots  # a setting of the machine: no option
    # A folder on the cluster is named as written: the remote side resolves ~ there.
    folder = Path(values["folder"]) if remote else Path(values["folder"]).expanduser()
    return SubmitOptions(
        cluster=cluster,
        requested_cluster=requested,
        remote=remote,
        remote_python=config.remote_python,
        folder=folder,
        parameters=parameters,
        max_num_timeout=int(values["max_num_timeout"]),
        by_value=tuple(dict.fromkeys(values["by_value"])),
        widget=bool(values["widget"]),
        dry_run=bool(values["dry_run"]),
        verify_checkpoint=values["verify_checkpoint"],
        max_payload_bytes=int(config.max_payload_mb * MB),
        warn_global_bytes=int(config.warn_global_mb * MB),
        ignored=tuple(ignored),
    )


def _merged(args: argparse.Namespace, config: SlurmConfig) -> dict[str, Any]:
    """Each option's value: given on the line, else the config's (repeated options and
    ``--sbatch`` add to the config's)."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given = getattr(args, dest(option), None)
        if given is None or option.repeat:  # the config value is used
            _check_config_text(option, getattr(config, option.trait, None))
        if option.trait == "widget":
            values["widget"] = config.widget and not given
        elif option.trait in ("dry_run", "verify_checkpoint"):
            values[option.trait] = given or (None if option.convert else False)
        elif option.trait == "sbatch":
            values["sbatch"] = {**config.sbatch, **dict(given or [])}
        elif option.repeat:
            values[option.trait] = [*getattr(config, option.trait), *(given or [])]
        else:
            values[option.trait] = given if given is not None else getattr(config, option.trait)
    return values


def _cluster_here(requested: str) -> str:
    """The backend ``--cluster`` picks here; Slurm only where ``sbatch`` is."""
    try:
        cluster = pick_cluster(requested)
    except ValueError as error:
        raise OptionError(str(error)) from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise OptionError(
            "--cluster slurm: sbatch is not on PATH (no Slurm client here); "
            "use --cluster local or --cluster auto"
        )
    return cluster


def remote_of(requested: str, configured: str | None) -> str | None:
    """The ``ssh://`` URL of the cluster the cells submit to over SSH, if they do: the one
    ``--cluster`` names, or ``SlurmMagics.remote`` for ``--cluster ssh`` and ``auto``."""
    if requested.startswith(SCHEME):
        return SshTarget.parse(requested).url
    if requested == "ssh" and not configured:
        raise OptionError(
            "--cluster ssh: name the cluster with --cluster ssh://[user@]login-node, or "
            "set it once with %config SlurmMagics.remote = 'login-node'"
        )
    if requested in ("ssh", "auto") and configured:
        return SshTarget.parse(configured).url
    return None


def _parameters(values: dict[str, Any], cluster: str) -> tuple[dict[str, Any], list[str]]:
    """The executor parameters of the options, and the options this backend ignores."""
    if cluster == "ssh":  # Slurm on the other side: Slurm's parameters
        cluster = "slurm"
    parameters: dict[str, Any] = {}
    ignored = []
    for trait, parameter in _PARAMETERS.items():
        value = values[trait]
        if value is None or value == [] or value == {}:
            continue
        if (trait in _SLURM_ONLY and cluster != "slurm") or (
            trait in _NOT_IN_DEBUG and cluster == "debug"
        ):
            ignored.append(f"--{trait.replace('_', '-')}")
            continue
        parameters[parameter.format(c=cluster)] = value
    return parameters, ignored


def _check_config_text(option: Option, value: Any) -> None:
    """Put a config trait's text values through the option's own check (numbers are checked
    by the executor's parameters)."""
    if option.convert is None or value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, dict):
        items = [f"{key}={item}" for key, item in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        items = [str(value)]
    for item in items:
        try:
            option.convert(item)
        except argparse.ArgumentTypeError as error:
            raise OptionError(f"SlurmMagics.{option.trait}: {error}") from None


def _check_module(name: str) -> None:
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise OptionError(f"--by-value {name}: cannot import it ({error})") from None
    if found is None:
        raise OptionError(f"--by-value {name}: no module named {name!r} on sys.path")


def build_executor(options: SubmitOptions) -> AutoExecutor:
    """The executor for these options, parameters set; touches no file (on a cluster
    reached over SSH it connects, and checks the Python there).

    Raises
    ------
    OptionError
        When the backend refuses a parameter (its message names it).
    RemoteUnreachable, RemoteEnvironmentError
        When a cluster reached over SSH cannot be reached, or cannot run this kernel's jobs.
    """
    arguments: dict[str, Any] = {f"{options.cluster}_max_num_timeout": options.max_num_timeout}
    if options.remote:
        arguments["ssh_python"] = options.remote_python
    try:
        executor = AutoExecutor(
            options.folder, cluster=options.remote or options.cluster, **arguments
        )
        executor.update_parameters(**options.parameters)
    except ValueError as error:
        raise OptionError(str(error)) from None
    # The magic refuses oversized payloads itself (with a diagnosis); the core's own limit
    # must not be the stricter one.
    limit_gb = options.max_payload_bytes / 1024**3
    executor.executor.max_pickle_size_gb = max(executor.executor.max_pickle_size_gb, limit_gb)
    return executor


def set_default_name(executor: AutoExecutor, name: str) -> None:
    """Name the job after its callable unless ``--name`` was given."""
    own = executor.executor.aliases.get("name", "name")  # Slurm calls it job_name
    if executor.parameters.get(own) is None and name:
        executor.update_parameters(name=name)
