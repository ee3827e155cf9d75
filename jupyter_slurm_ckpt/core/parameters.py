"""Job parameters: submitit's generic names, how a value is checked, what they add up to.

Each executor checks its parameters against :data:`GENERIC_PARAMETERS` and its own (a type, or
a function that converts or refuses the value: :func:`check_parameter`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import InvalidParameterError, UnknownParameterError

#: How a parameter is checked: a type (see :func:`check_parameter`), or a function
#: ``check(name, value)`` that returns the value to store or raises ``ValueError``.
Check = type | Callable[[str, Any], Any]

#: Parameters every executor understands (submitit's generic names) and their types.
GENERIC_PARAMETERS: dict[str, Check] = {
    "timeout_min": float,
    "mem_gb": float,
    "nodes": int,
    "cpus_per_task": int,
    "gpus_per_node": int,
    "tasks_per_node": int,
    "name": str,
    "stderr_to_stdout": bool,
}

DEFAULT_SIGNAL_DELAY_S = 90.0


def check_names(
    given: Iterable[str], valid: Mapping[str, Check], aliases: Mapping[str, str], owner: str
) -> None:
    """Refuse the names of ``given`` that ``owner`` (an executor class) does not take, and two
    names of one setting (``time`` and ``timeout_min``).

    Raises
    ------
    UnknownParameterError
        Naming the unknown ones and listing the valid ones.
    InvalidParameterError
        For an alias given with the name it stands for.
    """
    names = set(given)
    unknown = sorted(names - set(valid))
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) {', '.join(unknown)} for {owner}; "
            f"valid parameters: {', '.join(sorted(valid))}"
        )
    for alias, own in aliases.items():
        if alias in names and own in names:
            raise InvalidParameterError(
                f"{own} and {alias} set the same thing: give only one of them"
            )


def check_parameter(name: str, value: Any, kind: Check) -> Any:
    """Validate one parameter value; returns it converted.

    Raises
    ------
    InvalidParameterError
        A ``ValueError`` naming the parameter and what it must be.
    """
    try:
        return _check_value(name, value, kind)
    except InvalidParameterError:
        raise
    except ValueError as error:
        raise InvalidParameterError(str(error)) from None


def _check_value(name: str, value: Any, kind: Check) -> Any:
    if value is None:
        return None
    if not isinstance(kind, type):
        return kind(name, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, not {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str) or not value or "\n" in value:
            raise ValueError(f"{name} must be a non-empty one-line string, not {value!r}")
        return value
    if kind is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError(f"{name} must be a list, not {value!r}")
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    minimum = 0 if name in _MAY_BE_ZERO else 1e-9
    if value < minimum:
        raise ValueError(f"{name} must be {'>= 0' if minimum == 0 else '> 0'}, not {value!r}")
    return kind(value)


_MAY_BE_ZERO = ("gpus_per_node", "num_gpus", "max_num_timeout", "signal_delay_s")


#: Control characters (newline, carriage return, tab, escape, NUL...): refused in every text
#: that becomes one line of something (an sbatch option, a shell line, an option of the magic).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def tasks_per_job(parameters: Mapping[str, Any], per_node: str = "tasks_per_node") -> int:
    """The tasks of each job: ``nodes * tasks_per_node`` (``per_node``: the backend's own name
    for the latter, Slurm's ``ntasks_per_node``); 1 by default."""
    return int(parameters.get("nodes") or 1) * int(parameters.get(per_node) or 1)
