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
    except subprocess.TimeoutExpired as error:
        # What it said meanwhile says why: sbatch, when slurmctld holds MaxJobCount jobs,
        # "Slurm temporarily unable to accept job, sleeping and retrying".
        said = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else ""
        said = " ".join(said.split())
        message = f"{argv[0]} did not answer within {timeout:.0f} s"
        raise SchedulerError(f"{message}: {said}" if said else message) from None


#: What is asked about one job (:func:`job_facts`): our name for each fact (Slurm's
#: ``scontrol show job`` key) and the ``squeue --Format`` field that prints it. Only fields Slurm
#: writes itself: ``scontrol show job`` also prints the job's name, comment and paths, where text
#: such as ``--comment 'x Reason=TimeLimit'`` (or a newline and a whole line) could pass for
#: Slurm's own fields.
JOB_FACTS = {
    "JobState": "State",
    "Reason": "Reason",
    "Restarts": "RestartCnt",
    "PreemptTime": "PreemptTime",
    "EndTime": "EndTime",
    "ExitCode": "exit_code",
    "Priority": "PriorityLong",
}
#: The time format of our Slurm calls that print times: Unix seconds. A site's own
#: ``SLURM_TIME_FORMAT`` (often set in users' profiles) would not parse.
TIME_FORMAT = "%s"


def job_facts(job_id: str, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, str] | None:
    """:data:`JOB_FACTS` of one job (times in Unix seconds, unset ones ``N/A``), from one
    ``squeue``; None when Slurm does not answer within ``timeout`` or no longer knows the job.
    """
    fields = ",".join(f"{field}:|" for field in JOB_FACTS.values())  # "|" ends each field
    argv = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={job_id}",
            f"--Format={fields}"]
    environment = {**os.environ, "SLURM_TIME_FORMAT": TIME_FORMAT}
    try:
        done = run_command(argv, timeout=timeout, env=environment)
    except SchedulerError:
        return None
    lines = done.stdout.splitlines()
    values = lines[0].split("|") if done.returncode == 0 and lines else []
    if len(values) < len(JOB_FACTS):
        return None
    facts = dict(zip(JOB_FACTS, (value.strip() for value in values)))
    facts["ExitCode"] = exit_code_text(facts["ExitCode"])
    return facts


def exit_code_text(text: str) -> str:
    """``exit:signal`` as ``scontrol`` and ``sacct`` print it: squeue before 24.11 prints the raw
    wait status (768 is 3:0, 9 is 0:9)."""
    if not text.isdigit():
        return text
    status = int(text)
    signal = status & 0x7F
    return f"0:{signal}" if signal else f"{(status >> 8) & 0xFF}:0"


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
