"""Fixtures of the Slurm tests (the cluster itself: ``slurm_cluster`` in tests/conftest.py)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from support import cancel_leftover_jobs

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.slurm.records import PollPolicy
from jupyter_slurm_ckpt.backends.slurm.state import STATES

sys.path.insert(0, str(Path(__file__).parent))
import slurm_jobs_for_tests

# The jobs import nothing from tests/: their callables travel by value.
cloudpickle.register_pickle_by_value(slurm_jobs_for_tests)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


#: The scheduler-polling cadence of the Slurm tests: what the defaults do in a minute, these do
#: in seconds (a job that dies without a word is seen within 6 s, not 60). The defaults
#: themselves are measured by benchmarks/bench_polling.py.
QUICK_POLLING = PollPolicy(first_s=0.5, pending_s=2.0, liveness_s=6.0)


@pytest.fixture(autouse=True)
def quick_polling() -> Iterator[PollPolicy]:
    """Every Slurm test polls at :data:`QUICK_POLLING` (the policy is process-wide)."""
    saved = STATES.policy
    STATES.policy = QUICK_POLLING
    yield QUICK_POLLING
    STATES.policy = saved


@pytest.fixture
def accounting(slurm_cluster: Any) -> bool:
    """Whether this run tests the sacct mode (True) or the squeue/scontrol fallback (False)."""
    return slurm_cluster.accounting


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A job folder; jobs left unfinished in it are cancelled afterwards."""
    path = tmp_path / "jobs"
    yield path
    cancel_leftover_jobs(path)


@pytest.fixture
def executor(folder: Path) -> submitit.AutoExecutor:
    """``AutoExecutor`` as a user would make it: Slurm is picked because sbatch is on PATH."""
    made = submitit.AutoExecutor(folder, slurm_max_num_timeout=3)
    assert made.cluster == "slurm"
    made.update_parameters(timeout_min=10)
    return made


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """The file that lets a ``Gated`` job finish (created by the test when it is done)."""
    return tmp_path / "gate"


def slurm_fields(job_id: str) -> dict[str, Any]:
    """``scontrol show job`` of a job as a dict (for assertions on what Slurm was given)."""
    done = _run("scontrol", "show", "job", "-o", job_id)
    assert done.returncode == 0, done.stderr
    fields: dict[str, Any] = {}
    for item in done.stdout.split():
        key, _, value = item.partition("=")
        fields[key] = value
    return fields


@dataclass
class SlurmCommandsOfTheJob:
    """``squeue`` and ``scontrol`` wrappers that a job puts first on its PATH (its setup line):
    each call is logged, and while :meth:`hang` is on, the job's questions about itself (what
    the worker asks when a signal comes) never get an answer, as with a controller that hangs.
    Everything else (``scontrol requeue``...) reaches Slurm."""

    bin: Path
    log: Path
    hang_flag: Path

    @property
    def setup_line(self) -> str:
        return f"export PATH={shlex.quote(str(self.bin))}:$PATH"

    def hang(self) -> None:
        self.hang_flag.touch()

    def questions(self) -> list[float]:
        """When the job asked Slurm about itself (``squeue`` of its facts, or before the fix
        ``scontrol show job``), oldest first."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [
            float(line.split(" ", 1)[0])
            for line in lines
            if "RestartCnt" in line or " scontrol show job" in line
        ]


_WRAPPER = """#!/bin/bash
printf '%s %s\\n' "$(date +%s.%N)" "{name} $*" >>{log}
case "$*" in
    *RestartCnt*|"show job"*) [ -e {flag} ] && exec sleep 300 ;;
esac
exec {real} "$@"
"""


@pytest.fixture
def commands_of_the_job(tmp_path: Path) -> SlurmCommandsOfTheJob:
    """See :class:`SlurmCommandsOfTheJob`."""
    made = SlurmCommandsOfTheJob(tmp_path / "bin", tmp_path / "calls.log", tmp_path / "hang")
    made.bin.mkdir()
    for name in ("squeue", "scontrol"):
        real = shutil.which(name)
        assert real is not None, f"{name} is not on PATH"
        wrapper = made.bin / name
        wrapper.write_text(_WRAPPER.format(
            name=name, real=shlex.quote(real), log=shlex.quote(str(made.log)),
            flag=shlex.quote(str(made.hang_flag)),
        ))
        wrapper.chmod(0o755)
    return made
