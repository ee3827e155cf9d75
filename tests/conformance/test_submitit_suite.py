"""submitit 1.5.4's own test files, run against jupyter_slurm_ckpt through a name shim.

Each test here runs one of submitit's test files in a pytest subprocess (see
``submitit_suite``) and checks that every submitit test passes, or fails as listed, with its
reason, in docs/submitit-compatibility.md. A failure without a row fails here; so does a row
whose test now passes (the page must say exactly what holds). The pass counts per file are
printed at the end of the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .submitit_suite import (
    ON_SLURM,
    RESULTS,
    WITHOUT_SLURM,
    Row,
    build_suite,
    compare,
    documented_divergences,
    download_wheel,
    run_file,
)

# submitit's slowest test (a 2-minute job) is opt-in; it runs here.
_SLOW = {"SUBMITIT_SLOW_TESTS": "1"}


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """submitit's test files and the shim, built once per run from the wheel on PyPI."""
    wheel = download_wheel(tmp_path_factory.mktemp("wheel"))
    return build_suite(tmp_path_factory.mktemp("submitit-suite"), wheel)


def _check(suite: Path, test_file: str, phase: str, env: dict[str, str]) -> None:
    outcome = run_file(suite, test_file, env)
    assert outcome.outcomes, f"no test of {test_file} ran:\n{outcome.output[-3000:]}"
    diverged, failing, stale = compare(outcome, phase, documented_divergences())
    RESULTS.append(
        Row(
            test_file,
            phase,
            outcome.count("passed"),
            outcome.count("xfailed"),
            outcome.count("skipped"),
            len(diverged),
            len(failing),
        )
    )
    problems = [f"{name}: {outcome.messages[name]}" for name in failing]
    problems += [f"{pattern}: listed as diverging, but passes now" for pattern in stale]
    assert not problems, (
        f"{test_file} ({phase}), not as docs/submitit-compatibility.md says:\n"
        + "\n".join(problems)
        + f"\n\nend of submitit's pytest output:\n{outcome.output[-2000:]}"
    )


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("test_file", WITHOUT_SLURM)
def test_submitit_tests_without_slurm(suite: Path, test_file: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}  # no cluster in reach
    _check(suite, test_file, "without Slurm", {**env, **_SLOW})


@pytest.mark.slurm
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("test_file", ON_SLURM)
def test_submitit_tests_on_slurm(suite: Path, test_file: str) -> None:
    _check(suite, test_file, "on Slurm", dict(os.environ))
