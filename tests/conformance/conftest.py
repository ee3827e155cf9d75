"""Print the pass counts of submitit's test files, and the outcome of each of
hydra-submitit-launcher's tests, at the end of the run (CI output)."""

from __future__ import annotations

from typing import Any

from .submitit_suite import LAUNCHER_RESULTS, RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write = terminalreporter.write_line
    if LAUNCHER_RESULTS:
        terminalreporter.section("hydra-submitit-launcher 1.2.0's tests, through as_submitit")
        for name, outcome in LAUNCHER_RESULTS.items():
            write(f"{outcome:<8} {name}")
        passed = sum(outcome == "passed" for outcome in LAUNCHER_RESULTS.values())
        write(f"{passed} of {len(LAUNCHER_RESULTS)} passed")
    if not RESULTS:
        return
    terminalreporter.section("submitit's own tests against jupyter_slurm_ckpt")
    write(f"{'submitit test file':<28} {'run':<14} passed xfailed skipped diverged failing")
    for row in RESULTS:
        write(
            f"{row.file:<28} {row.phase:<14} {row.passed:>6} {row.xfailed:>7} {row.skipped:>7} "
            f"{row.diverged:>8} {row.failing:>7}"
        )
    write("diverged: listed with its reason in docs/submitit-compatibility.md")
