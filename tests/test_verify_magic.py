"""``%%slurm --verify-checkpoint N`` in a real IPython ``InteractiveShell`` (local backend jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError

from jupyter_slurm_ckpt.verify.report import VerificationReport

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_checkpointed_training.ipynb"


def class_cell() -> str:
    """Notebook 02's cell defining the training recipe, run as a cell of this shell."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    (source,) = [c.source for c in cells if "class NetworkTraining" in c.source]
    return str(source)


def test_the_cell_form_verifies_and_binds_the_report(
    ipython: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.run(class_cell())
    ipython.run(
        "%%slurm --cluster local --verify-checkpoint 2 --max-num-timeout 0 --signal-delay-s 30\n"
        'report = NetworkTraining(seconds_per_epoch=0.05)("ckpt/net.npz")\n'
    )
    report = ipython.ns["report"]
    assert isinstance(report, VerificationReport)
    assert report.ok, report.text()
    assert report.interrupted is not None and report.interrupted.applied == 2
    # The magic's options reach the verification: no timeouts allowed, its signal delay.
    assert [r.reason for r in report.interrupted.interrupts] == ["preemption", "preemption"]
    assert report.max_num_timeout == 0 and report.signal_delay_s == 30
    assert report.cluster == "local" and report.folder == str(tmp_path / "slurm_jobs")
    printed = capsys.readouterr().out
    assert "verify_checkpoint(NetworkTraining): PASSED" in printed  # displayed by the magic
    # Its jobs are ordinary jobs of the folder, listed by %slurm_jobs.
    jobs = ipython.run("%slurm_jobs")
    assert len(jobs) == 2 and {job.info.name for job in jobs.values()} == {"verify-NetworkTraining"}


def test_what_cannot_be_verified_is_a_usage_error(ipython: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^f has no checkpoint\(\) or __submitit_checkpoint__"):
        ipython.run(
            "%%slurm --cluster local --verify-checkpoint 2\ndef f(x):\n    return x\nr = f(1)\n"
        )
    with pytest.raises(UsageError, match="--verify-checkpoint checks one call, not a job array"):
        ipython.run(
            "%%slurm --cluster local --verify-checkpoint 2\n"
            "from jupyter_slurm_ckpt import Checkpointable\n"
            "class C(Checkpointable):\n    def __call__(self, x):\n        return x\n"
            "jobs = [C()(x) for x in range(2)]\n"
        )
    assert not list(tmp_path.rglob("*_job.json"))  # nothing submitted
    assert "r" not in ipython.ns and "jobs" not in ipython.ns
