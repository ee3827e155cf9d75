"""The parameters of ``SlurmExecutor``: submitit 1.5.4's vocabulary, checked and converted.

``SlurmExecutor.update_parameters(name=...)`` and ``AutoExecutor.update_parameters(
slurm_name=...)`` take Slurm's names (``job_name``, ``time``, ``mem``, ``ntasks_per_node``...)
and submitit's generic ones, stored under the Slurm name (``timeout_min`` is ``time``,
``mem_gb=2`` is ``mem="2GB"``). How each becomes an sbatch option or a line of the batch
script: :mod:`.script`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ...core.errors import InvalidParameterError
from ...core.parameters import Check, tasks_per_job
from .script import (
    _PLAIN_FLAGS,
    check_additional_parameters,
    check_lines,
    flag_name,
    time_text_minutes,
)

_MEMORY = re.compile(r"^\d+(\.\d+)?[KMGT]?B?$", re.IGNORECASE)


def check_time(name: str, value: Any) -> Any:
    """A time limit: minutes (a number) or Slurm's text (``"1:30:00"``, ``"2-00"``)."""
    if isinstance(value, str):
        time_text_minutes(value)  # raises on a bad format
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be minutes (> 0) or a Slurm time like '1:30:00'")
    return value


def check_memory(name: str, value: Any) -> Any:
    """A Slurm memory size: ``"200M"``, ``"2GB"``, or a number of megabytes."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} must be a size like '2GB' or '500M', not {value!r}")
    if isinstance(value, int) and value <= 0:
        raise ValueError(f"{name} must be a size like '2GB' or '500M', not {value!r}")
    if isinstance(value, str) and not _MEMORY.match(value):
        raise ValueError(f"{name} must be a size like '2GB' or '500M', not {value!r}")
    return value


def check_exclusive(name: str, value: Any) -> Any:
    """``True`` (``--exclusive``) or a mode such as ``"user"`` (``--exclusive=user``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and re.match(r"^[a-z]+$", value):
        return value
    raise ValueError(f"{name} must be True or an --exclusive mode such as 'user', not {value!r}")


def _lines(name: str, value: Any) -> tuple[str, ...]:
    return check_lines(name, value)


def _additional(name: str, value: Any) -> dict[str, Any]:
    return check_additional_parameters(value)


#: Every Slurm parameter of submitit 1.5.4's ``SlurmExecutor`` (and ``reservation``), checked.
SLURM_PARAMETERS: dict[str, Check] = {
    "job_name": str,
    "partition": str,
    "time": check_time,
    "nodes": int,
    "ntasks_per_node": int,
    "cpus_per_task": int,
    "cpus_per_gpu": int,
    "num_gpus": int,
    "gpus_per_node": int,
    "gpus_per_task": int,
    "qos": str,
    "setup": _lines,
    "teardown": _lines,
    "mem": check_memory,
    "mem_per_gpu": check_memory,
    "mem_per_cpu": check_memory,
    "signal_delay_s": float,
    "comment": str,
    "constraint": str,
    "exclude": str,
    "account": str,
    "gres": str,
    "mail_type": str,
    "mail_user": str,
    "nodelist": str,
    "dependency": str,
    "exclusive": check_exclusive,
    "array_parallelism": int,
    "wckey": str,
    "stderr_to_stdout": bool,
    "additional_parameters": _additional,
    "srun_args": _lines,
    "use_srun": bool,
    "reservation": str,
}

#: Other names of Slurm parameters: submitit's generic ones, and the legacy ``num_gpus``.
ALIASES = {
    "name": "job_name",
    "timeout_min": "time",
    "mem_gb": "mem",
    "tasks_per_node": "ntasks_per_node",
    "num_gpus": "gpus_per_node",
}

#: sbatch refuses more than one of these.
_MEMORY_FLAGS = ("mem", "mem_per_cpu", "mem_per_gpu")


def memory_of_gb(mem_gb: float) -> str:
    """``mem_gb`` as Slurm's ``mem``: ``"2GB"``, or whole megabytes (``3.5`` -> ``"3584MB"``)."""
    if mem_gb == int(mem_gb):
        return f"{int(mem_gb)}GB"
    return f"{math.ceil(mem_gb * 1024)}MB"


def own_parameter(name: str, value: Any) -> tuple[str, Any]:
    """The Slurm name and value of a checked parameter given under ``name``."""
    if name == "mem_gb" and value is not None:
        return "mem", memory_of_gb(float(value))
    return ALIASES.get(name, name), value


def check_together(parameters: Mapping[str, Any]) -> None:
    """Refuse parameters that sbatch would refuse together, or that say one thing twice.

    Raises
    ------
    InvalidParameterError
        Two of ``mem``/``mem_per_cpu``/``mem_per_gpu`` (given by name or in
        ``additional_parameters``); a flag both named and in ``additional_parameters``;
        ``use_srun=False`` with more than one task.
    """
    extra = {flag_name(key) for key in parameters.get("additional_parameters") or {}}
    named = {flag_name(key) for key in (*_PLAIN_FLAGS, "exclusive") if key in parameters}
    twice = sorted(named & extra)
    if twice:
        raise InvalidParameterError(
            f"--{twice[0]} is set both as a parameter and in additional_parameters: keep one"
        )
    memory = [key for key in _MEMORY_FLAGS if key in parameters or flag_name(key) in extra]
    if len(memory) > 1:
        raise InvalidParameterError(
            f"{' and '.join(memory)} are exclusive in Slurm (memory per node, per CPU or per "
            "GPU): give one"
        )
    tasks = tasks_per_job(parameters, "ntasks_per_node")
    if parameters.get("use_srun") is False and tasks > 1:
        raise InvalidParameterError(
            f"use_srun=False runs one task, but nodes * ntasks_per_node is {tasks}: "
            "drop use_srun=False or ask for one task"
        )
