"""Fixtures of the Slurm tests: they run against a real cluster, or fail saying why.

The cluster is started outside pytest (CI: ``scripts/test.sh``; by hand: ``eval "$(bash
tests/slurm/cluster.sh start [--accounting])"``), which exports ``SLURM_CONF``. Without it, or
with a cluster that does not answer, every test here FAILS with the reason: a CI run must never
pass by skipping them. ``JSC_SKIP_SLURM=1`` (a developer without root) skips them instead.
"""

from __future__ import annotations

import os
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

sys.path.insert(0, str(Path(__file__).parent))
import slurm_jobs_for_tests

# The jobs import nothing from tests/: their callables travel by value.
cloudpickle.register_pickle_by_value(slurm_jobs_for_tests)

START_HINT = (
    'start it as root with `eval "$(bash tests/slurm/cluster.sh start)"` (add --accounting for '
    "sacct), or set JSC_SKIP_SLURM=1 to skip the Slurm tests"
)


@dataclass(frozen=True)
class Cluster:
    """The cluster under test."""

    conf: str
    #: Whether ``sacct`` works (slurmdbd accounting storage), i.e. which polling mode is used.
    accounting: bool


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="session")
def slurm_cluster() -> Cluster:
    """The running dev cluster; fails every Slurm test when there is none (see module doc)."""
    if os.environ.get("JSC_SKIP_SLURM") == "1":
        pytest.skip("JSC_SKIP_SLURM=1: Slurm tests skipped on request")
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        pytest.fail(f"SLURM_CONF is not set, so there is no Slurm cluster to test: {START_HINT}")
    try:
        ping = _run("scontrol", "ping")
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"scontrol ping failed ({error}); {START_HINT}")
    if "is UP" not in ping.stdout:
        pytest.fail(
            f"the Slurm cluster of SLURM_CONF={conf} does not answer "
            f"({(ping.stdout + ping.stderr).strip()}); {START_HINT}"
        )
    sacct = _run("sacct", "-n", "-X", "-j", "1", "-o", "JobID")
    accounting = sacct.returncode == 0 and "disabled" not in sacct.stdout + sacct.stderr
    return Cluster(conf, accounting)


@pytest.fixture(autouse=True)
def _needs_cluster(slurm_cluster: Cluster) -> None:
    """Every test of this folder needs the cluster (fails, or skips on request, without it)."""


@pytest.fixture
def accounting(slurm_cluster: Cluster) -> bool:
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
