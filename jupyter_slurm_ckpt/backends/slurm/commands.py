"""Running Slurm's client commands: argv only (never a shell), counted, with a timeout."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

COMMAND_TIMEOUT_S = 30.0


class SchedulerError(RuntimeError):
    """A Slurm command failed (its stderr is the message)."""


@dataclass
class CommandCounter:
    """How many scheduler commands this process ran (for benchmarks and tests)."""

    total: int = 0
    by_command: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.total += 1
        self.by_command[name] = self.by_command.get(name, 0) + 1


COUNTER = CommandCounter()


def run_command(
    argv: list[str],
    timeout: float = COMMAND_TIMEOUT_S,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a Slurm client command (argv, never a shell); counted in :data:`COUNTER`."""
    COUNTER.add(os.path.basename(argv[0]))
    try:
        return subprocess.run(
            argv,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError:
        raise SchedulerError(f"{argv[0]} is not on PATH (no Slurm client here)") from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"{argv[0]} did not answer within {timeout:.0f} s") from None


def scontrol_fields(text: str) -> dict[str, str]:
    """``Key=Value`` pairs of ``scontrol show job -o`` (values without spaces are exact)."""
    return dict(re.findall(r"(?:^|\s)([A-Za-z][A-Za-z:/]*)=(\S*)", text))


def show_job(job_id: str, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, str] | None:
    """``scontrol show job -o`` of one job as a dict, or None when Slurm does not answer or no
    longer knows it."""
    try:
        done = run_command(["scontrol", "show", "job", "-o", job_id], timeout=timeout)
    except SchedulerError:
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return scontrol_fields(done.stdout.splitlines()[0])


_config_lock = threading.Lock()
_config: dict[str, str] | None = None


def slurm_config() -> dict[str, str]:
    """``scontrol show config`` as a dict (``{"KillWait": "5 sec", ...}``), asked once per
    process; empty when Slurm does not answer (asked again next time)."""
    global _config
    with _config_lock:
        if _config is None:
            try:
                done = run_command(["scontrol", "show", "config"])
            except SchedulerError:
                return {}
            if done.returncode != 0:
                return {}
            _config = dict(re.findall(r"^(\w+)\s+= (.*?)\s*$", done.stdout, re.MULTILINE))
        return _config


def known_config() -> dict[str, str]:
    """What :func:`slurm_config` read already in this process (empty if it has not: never asks
    Slurm)."""
    with _config_lock:
        return dict(_config or {})


def kill_wait_s() -> float | None:
    """Slurm's ``KillWait``: how long a run lives after its SIGTERM (None: not known)."""
    value = slurm_config().get("KillWait", "").split()
    return float(value[0]) if value and value[0].isdigit() else None
