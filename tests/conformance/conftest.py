"""Print the pass counts of submitit's test files at the end of the run (CI output)."""

from __future__ import annotations

from typing import Any

from .submitit_suite import RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("submitit's own tests against jupyter_slurm_ckpt")
    write(f"{'submitit test file':<28} {'run':<14} passed xfailed skipped diverged failing")
    for row in RESULTS:
        write(
            f"{row.file:<28} {row.phase:<14} {row.passed:>6} {row.xfailed:>7} {row.skipped:>7} "
            f"{row.diverged:>8} {row.failing:>7}"
        )
    write("diverged: listed with its reason in docs/submitit-compatibility.md")
