"""Debug job ids: unique per folder template, allocated atomically across processes (#17)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupyter_slurm_ckpt as submitit


def test_debug_ids_are_unique_in_a_per_job_folder(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path / "%j", cluster="debug")
    first = executor.submit(lambda: "a")
    second = executor.submit(lambda: "b")
    assert first.job_id != second.job_id
    assert (first.result(), second.result()) == ("a", "b")
    assert "DEBUG" in first.job_id  # submitit's debug ids say what they are
    again = submitit.Job(tmp_path / "%j", second.job_id)  # re-attached from the folder alone
    assert again.result() == "b"


_SUBMIT_MANY = """
import sys
import jupyter_slurm_ckpt as submitit
executor = submitit.DebugExecutor(sys.argv[1])
print(" ".join(executor.submit(int).job_id for _ in range(15)))
"""


def test_debug_ids_are_allocated_atomically_across_processes(tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "%j"
    submitters = [
        subprocess.Popen(
            [sys.executable, "-c", _SUBMIT_MANY, str(folder)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in submitters]
    ids = [job_id for output in outputs for job_id in output.split()]
    assert all(process.returncode == 0 for process in submitters)
    assert len(ids) == 60 and len(set(ids)) == 60, sorted(ids)
