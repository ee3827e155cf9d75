"""``verify_checkpoint``: real jobs on the local backend, real interrupts, real comparisons.

The checkpointable under test is the training recipe of ``notebooks/02_checkpointed_training``:
its class cell is read from the notebook and executed here, so the test verifies exactly what
the notebook shows. The broken checkpoints are that same cell with one deliberate bug each.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import nbformat
import numpy as np
import pytest

import jupyter_slurm_ckpt
from jupyter_slurm_ckpt import Checkpointable, DelayedSubmission
from jupyter_slurm_ckpt.core.budget import check_budget
from jupyter_slurm_ckpt.verify import (
    VerificationError,
    first_difference,
    plan_interrupts,
    verify_checkpoint,
)
from jupyter_slurm_ckpt.verify.plan import FRACTION_RANGE
from jupyter_slurm_ckpt.verify.report import VerificationReport

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_checkpointed_training.ipynb"
EPOCH_S = 0.05  # 30 epochs: a reference run of about 1.5 s


def notebook_cell(marker: str) -> str:
    """The source of the one code cell of notebook 02 that contains ``marker``."""
    cells = [
        cell.source
        for cell in nbformat.read(NOTEBOOK, as_version=4).cells
        if cell.cell_type == "code" and marker in cell.source
    ]
    assert len(cells) == 1, f"notebook 02 has {len(cells)} code cells with {marker!r}"
    return str(cells[0])


def define(replacements: tuple[tuple[str, str], ...] = (), prefix: str = "") -> dict[str, Any]:
    """Run the notebook's class cell (with ``replacements``) as a notebook would: in __main__.

    Classes of ``__main__`` are pickled by value, exactly as those of a notebook cell.
    """
    source = notebook_cell("class NetworkTraining")
    for old, new in replacements:
        assert source.count(old) == 1, f"notebook 02's class cell no longer has {old!r}"
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(prefix + source, "<notebook 02, class cell>", "exec"), namespace)
    return namespace


def training(namespace: dict[str, Any]) -> Any:
    return namespace["NetworkTraining"](seconds_per_epoch=EPOCH_S)


def verify(callable_: Any, folder: Path, **options: Any) -> VerificationReport:
    options.setdefault("verbose", False)
    return verify_checkpoint(callable_, "ckpt/net.npz", folder=folder / "jobs", **options)


# The three classic checkpoint bugs, each a small edit of the notebook's correct recipe.
FORGETS_RNG_STATE = (
    (",\n                     rng_state=json.dumps(self.rng_state))", ")"),
    (
        'rng_state = json.loads(str(data["rng_state"]))',
        "rng_state = np.random.default_rng(0).bit_generator.state  # not saved: re-seeded",
    ),
)
RESUMES_ONE_EPOCH_EARLY = (('int(data["epoch"])', 'int(data["epoch"]) - 1'),)
# checkpoint() returns a fresh instance (as the recipe says), but the fresh instance never
# loads the saved weights: it continues the saved epoch count on a newly initialised model.
NEVER_LOADS_THE_MODEL = (
    (
        "self.model = Model.load(checkpointpath)  # load the model: resume",
        "saved = Model.load(checkpointpath)\n"
        '            fresh = Model.new(x.shape[1], s["seed"])\n'
        "            self.model = Model(fresh.w, fresh.b, saved.epoch, saved.rng_state)",
    ),
)


def test_the_notebook_recipe_passes(tmp_path: Path) -> None:
    started = time.monotonic()
    report = verify(training(define()), tmp_path, interrupts=5, seed=0)
    wall = time.monotonic() - started
    assert report.ok and report.verdict == "PASSED", report.text()
    run = report.interrupted
    assert run is not None and run.equal and run.difference is None
    assert run.applied == 5
    assert report.first_divergence is None and report.bisection == []
    records = [r for r in run.interrupts if r.planned is not None]
    reasons = [r.reason for r in records]
    assert set(reasons) == {"preemption", "timeout"}  # a mix, within max_num_timeout=3
    assert reasons == [r.planned.reason for r in records if r.planned]
    assert reasons.count("timeout") <= 3
    for record in records:
        assert record.requeued and record.not_requeued is None
        assert record.checkpoint_s is not None and record.checkpoint_bytes
        assert record.next_run == record.run + 1
        assert record.after_s is not None and record.after_s >= 0
    # Where each run resumed, from report_progress(epoch=...) in the recipe.
    resumed = [r.resumed_at["epoch"] for r in records if r.resumed_at]
    assert len(resumed) == 5 and resumed == sorted(resumed) and resumed[-1] > 0
    assert any(r.files_bytes for r in records)  # the .npz files written by checkpoint()
    assert report.reference.value["epochs"] == run.value["epochs"] == 30
    assert report.overhead_s is not None
    assert report.budget_warnings == []
    assert not report.files_kept and not Path(report.workdir).exists()
    text = report.text()
    assert text.startswith("verify_checkpoint(NetworkTraining): PASSED")
    assert "resumed at epoch=" in text and "overhead:" in text
    print(f"verification of 5 interrupts: {wall:.1f} s wall, overhead {report.overhead_s:+.2f} s")


@pytest.mark.parametrize(
    "bug",
    [FORGETS_RNG_STATE, RESUMES_ONE_EPOCH_EARLY, NEVER_LOADS_THE_MODEL],
    ids=["forgets-rng-state", "resumes-one-epoch-early", "never-loads-the-model"],
)
def test_broken_checkpoints_are_caught(bug: tuple[tuple[str, str], ...], tmp_path: Path) -> None:
    report = verify(training(define(bug)), tmp_path, interrupts=3)
    assert not report.ok and report.verdict == "FAILED", report.text()
    assert report.first_divergence == 1
    assert report.interrupted is not None and report.interrupted.difference
    assert report.interrupted.difference.startswith("result[")
    assert report.bisection[-1].label == "first 1 interrupt"
    assert report.bisection[-1].equal is False
    assert "FAILED: the results differ after interrupt 1 (" in report.text()
    assert report.files_kept and Path(report.workdir).is_dir()  # kept for inspection


def test_bisection_names_a_later_interrupt(tmp_path: Path) -> None:
    # Resumes one epoch early only from the fourth run on: interrupts 1 and 2 are harmless.
    late = (('int(data["epoch"])', 'int(data["epoch"]) - (JobEnvironment().restart_count >= 3)'),)
    namespace = define(late, prefix="from jupyter_slurm_ckpt import JobEnvironment\n")
    report = verify(training(namespace), tmp_path, interrupts=5)
    assert report.first_divergence == 3, report.text()
    assert [(step.label, step.equal) for step in report.bisection] == [
        ("first 2 interrupts", True),
        ("first 3 interrupts", False),
    ]
    planned = report.schedule[2]
    assert f"after interrupt 3 ({planned.reason} at {planned.fraction:.0%})" in report.text()


def test_a_user_compare_wins(tmp_path: Path) -> None:
    broken = training(define(RESUMES_ONE_EPOCH_EARLY))
    lenient = verify(
        broken, tmp_path, interrupts=2, compare=lambda a, b: a["epochs"] == b["epochs"]
    )
    assert lenient.ok, lenient.text()

    def explode(reference: Any, value: Any) -> bool:
        raise KeyError("loss")

    failing = verify(training(define()), tmp_path, interrupts=1, compare=explode, bisect=False)
    assert not failing.ok and failing.interrupted is not None
    assert failing.interrupted.difference == "compare() raised KeyError: 'loss'"


class Counting(Checkpointable):
    """Counts to n, slowly; its progress survives checkpoints (Checkpointable's pickle)."""

    def __init__(self, checkpoint_s: float = 0.0) -> None:
        self.count = 0
        self.checkpoints = 0
        self.checkpoint_s = checkpoint_s

    def __call__(self, n: int) -> int:
        while self.count < n:
            self.count += 1
            time.sleep(0.02)
        return self.count

    def checkpoint(self, n: int) -> DelayedSubmission[Any]:
        self.checkpoints += 1
        time.sleep(self.checkpoint_s)
        return super().checkpoint(n)


class FailsAtSecondCheckpoint(Counting):
    """Correct, except that its second checkpoint() raises (a full disk, say)."""

    def checkpoint(self, n: int) -> DelayedSubmission[Any]:
        if self.checkpoints == 1:
            raise OSError("No space left on device")
        return super().checkpoint(n)


class FailsAlways(Counting):
    def __call__(self, n: int) -> int:
        raise ValueError("bad input")


class NotCheckpointable:
    def __call__(self, path: str) -> int:
        return 1


@pytest.fixture
def by_value() -> Iterator[None]:
    # The jobs' fresh interpreters need not import this test module.
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def test_a_slow_checkpoint_is_over_budget(tmp_path: Path, by_value: None) -> None:
    report = verify_checkpoint(
        Counting(checkpoint_s=1.5),
        50,
        interrupts=1,
        folder=tmp_path / "jobs",
        executor_parameters={"signal_delay_s": 1},
        verbose=False,
    )
    # The result is right (the verification jobs let the checkpoint finish, to time it) ...
    assert report.equal and report.verdict == "OVER BUDGET" and not report.ok, report.text()
    # ... but on a cluster the run would be killed 1 s after the signal.
    (warning,) = report.budget_warnings
    assert warning.startswith("checkpoint() and its write took 1.5 s but the signal leaves 1 s")
    assert "(signal_delay_s=1, margin 0.1 s) before the hard kill" in warning
    assert report.interrupted is not None
    assert report.interrupted.interrupts[0].budget == warning
    assert "OVER BUDGET" in report.text() and "over the checkpoint budget" in report.text()


def test_a_checkpoint_that_raises_fails_the_verification(tmp_path: Path, by_value: None) -> None:
    report = verify_checkpoint(
        FailsAtSecondCheckpoint(), 60, interrupts=4, folder=tmp_path / "jobs", verbose=False
    )
    assert report.verdict == "FAILED" and report.first_divergence == 2, report.text()
    run = report.interrupted
    assert run is not None and run.state == "CANCELLED"  # stopped once it was not requeued
    assert run.difference == "not requeued after interrupt 2: OSError: No space left on device"
    assert [r.applied for r in run.interrupts] == [True, True, False, False]
    assert run.interrupts[1].not_requeued == "OSError: No space left on device"
    assert "not sent: the job had already ended" in report.text()


def test_a_run_killed_mid_checkpoint_is_over_budget(tmp_path: Path, by_value: None) -> None:
    # An ordinary job (no verification): the local backend kills it 0.5 s after the signal.
    executor = jupyter_slurm_ckpt.AutoExecutor(tmp_path / "jobs", cluster="local")
    executor.update_parameters(local_signal_delay_s=0.5)
    job = executor.submit(Counting(checkpoint_s=30.0), 100_000)
    try:
        deadline = time.monotonic() + 120
        while not (job.state == "RUNNING" and job.summary().runs):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        job._interrupt()
        job.wait(timeout=120)
    finally:
        job.cancel()
    assert job.state == "PREEMPTED"
    (warning,) = check_budget(job.events(), job.info)
    assert warning.killed and warning.delay_s == 0.5 and warning.seconds >= 0.5
    assert "(signal_delay_s=0.5, margin 0.05 s)" in warning.message


def test_a_failing_reference_is_inconclusive(tmp_path: Path, by_value: None) -> None:
    report = verify_checkpoint(FailsAlways(), 5, folder=tmp_path / "jobs", verbose=False)
    assert report.verdict == "INCONCLUSIVE" and report.interrupted is None
    assert report.problem == "the reference run (without interrupts) failed; fix the call first"
    assert report.reference.error is not None and "ValueError: bad input" in report.reference.error
    assert "ValueError: bad input" in report.text()


def test_an_absolute_checkpoint_path_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared.npz"
    report = verify_checkpoint(
        training(define()),
        str(shared),
        interrupts=1,
        folder=tmp_path / "jobs",
        verbose=False,
    )
    assert report.verdict == "INCONCLUSIVE" and not report.ok
    assert report.problem is not None
    assert report.problem.startswith(f"the interrupted run wrote {shared}: an absolute path")


def test_calls_that_cannot_be_verified(tmp_path: Path, by_value: None) -> None:
    folder = tmp_path / "jobs"
    with pytest.raises(VerificationError, match=r"^NotCheckpointable has no checkpoint\(\)"):
        verify_checkpoint(NotCheckpointable(), "x", folder=folder)
    with pytest.raises(VerificationError, match="debug backend"):
        verify_checkpoint(Counting(), 1, cluster="debug", folder=folder)
    with pytest.raises(VerificationError, match="interrupts must be a whole number >= 1"):
        verify_checkpoint(Counting(), 1, interrupts=0, folder=folder)
    with pytest.raises(VerificationError, match="either a DelayedSubmission or fn"):
        verify_checkpoint(DelayedSubmission(Counting(), 1), 2, folder=folder)
    with pytest.raises(VerificationError, match="executor_parameters: unknown parameter"):
        verify_checkpoint(Counting(), 1, folder=folder, executor_parameters={"nope": 1})
    assert not list(folder.rglob("*_job.json"))  # nothing was submitted


def test_the_schedule_is_reproducible_and_mixed() -> None:
    assert plan_interrupts(5, seed=3) == plan_interrupts(5, seed=3)
    assert plan_interrupts(5, seed=3) != plan_interrupts(5, seed=4)
    for seed in range(30):
        for count in (1, 2, 5, 8):
            for limit in (0, 1, 3):
                schedule = plan_interrupts(count, seed, limit)
                fractions = [p.fraction for p in schedule]
                reasons = [p.reason for p in schedule]
                assert [p.index for p in schedule] == list(range(1, count + 1))
                assert fractions == sorted(fractions)
                assert FRACTION_RANGE[0] < fractions[0] and fractions[-1] < FRACTION_RANGE[1]
                assert reasons.count("timeout") <= limit
                if count >= 2 and limit >= 1:
                    assert set(reasons) == {"preemption", "timeout"}


def test_first_difference() -> None:
    assert first_difference({"a": [1, 2.0, (3, "x")]}, {"a": [1, 2.0, (3, "x")]}) is None
    assert first_difference(0.1 + 0.2, 0.3) is None  # a tolerance for floats
    assert first_difference(float("nan"), float("nan")) is None
    assert first_difference(np.arange(3.0), np.arange(3.0) + 1e-12) is None
    assert first_difference({"w": np.zeros(2)}, {"w": np.array([0.0, 0.5])}) == (
        "result['w']: 1 of 2 elements differ, first at (1,): 0.0 (reference) vs 0.5"
    )
    assert first_difference([1, 2], [1, 3]) == "result[1]: 2 (reference) vs 3"
    assert first_difference((1,), [1]) == "result: tuple (reference) vs list"
    assert first_difference([1], [1, 2]) == "result: length 1 (reference) vs 2"
    assert first_difference({"a": 1}, {"b": 1}) == (
        "result: keys differ (missing ['a'], unexpected ['b'])"
    )
    assert first_difference(np.zeros(2), np.zeros(3)) == "result: shape (2,) (reference) vs (3,)"
    assert first_difference(1.0, 1.001) == "result: 1.0 (reference) vs 1.001"
    assert first_difference(np.float64(0.25), 0.25) is None
    assert first_difference(math.inf, math.inf) is None
    assert first_difference("a", "b") == "result: 'a' (reference) vs 'b'"


def test_the_report_renders_without_a_kernel(tmp_path: Path) -> None:
    report = verify(training(define(RESUMES_ONE_EPOCH_EARLY)), tmp_path, interrupts=1)
    bundle = report._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}  # no kernel here: no widget view
    assert bundle["text/plain"] == report.text()
    assert "FAILED" in bundle["text/html"] and "<table" in bundle["text/html"]
    assert str(report) == report.text()
    widget = report.widget()  # ipywidgets, built on request
    assert type(widget).__name__ == "VBox"
    assert "FAILED" in widget.children[0].value
    assert jupyter_slurm_ckpt.verify_checkpoint is verify_checkpoint  # the public name
