"""Checkpoint verification: prove a callable's checkpointing correct before the long run.

:func:`verify_checkpoint` runs the same call twice through a real backend (``run``): once without
interruption (the reference), then once with N interrupts sent by ``job._interrupt()`` at seeded,
reproducible moments (``plan``: a mix of preemptions and timeouts). It compares the two results
(``judge``); when they differ it re-runs the call with the first k interrupts only (a bisection)
to name the first interrupt after which the results diverge (``report``). Each run works in its
own fresh working directory (``workdir``).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends.auto import AutoExecutor
from ..core.executor import Executor
from ..core.helpers import DelayedSubmission, checkpoint_method
from ..core.info import JobInfo, callable_name
from ..core.parameters import DEFAULT_SIGNAL_DELAY_S
from ..views.words import plural
from .judge import first_difference, judge, user_compare
from .plan import PlannedInterrupt, plan_interrupts
from .report import VerificationReport
from .run import Verification
from .workdir import path_arguments, written_paths

#: The verification jobs' own signal delay: a slow checkpoint() is allowed to finish (and is
#: measured against the delay the user asked for, which the budget check uses).
VERIFY_SIGNAL_DELAY_S = 600.0

#: A reference run shorter than this hardly leaves room for interrupts: say so.
SHORT_RUN_S = 0.5


class VerificationError(ValueError):
    """The call cannot be verified as given (a one-line explanation)."""


def verify_checkpoint(
    fn: Callable[..., Any] | DelayedSubmission[Any],
    *args: Any,
    interrupts: int = 5,
    seed: int = 0,
    compare: Callable[[Any, Any], Any] | None = None,
    cluster: str = "local",
    folder: str | Path | None = None,
    executor: AutoExecutor | Executor | None = None,
    executor_parameters: dict[str, Any] | None = None,
    bisect: bool = True,
    timeout_s: float | None = None,
    verbose: bool = True,
    **kwargs: Any,
) -> VerificationReport:
    """Run ``fn(*args, **kwargs)`` uninterrupted, then with interrupts; compare the results.

    Real jobs: once uninterrupted (the reference), then with ``interrupts`` simulated
    preemptions and timeouts (``job._interrupt()``) at moments drawn with ``seed``; if the
    results differ, runs with the first k interrupts bisect the schedule to name the first
    after which they diverge. Each run has its own empty working directory: give checkpoint
    paths *relative*. The call must be deterministic.

    Parameters
    ----------
    fn, *args, **kwargs
        The checkpointable call (or a ``DelayedSubmission`` alone: for keyword arguments
        named like the options). ``interrupts``, ``seed``: the schedule's size and seed.
    compare
        ``compare(reference, result) -> bool``; default :func:`first_difference` (``==``, a
        tolerance for floats and numpy arrays, recursively in dicts, lists and tuples).
    cluster, folder, executor
        The backend (``"local"``, ``"slurm"``, ``"auto"``) and job folder (``slurm_jobs``), or
        an executor to copy them and its parameters from (the one ``%%slurm`` builds).
    executor_parameters
        Parameters by name (``{"timeout_min": 10, "max_num_timeout": 2, "signal_delay_s":
        30}``): ``max_num_timeout`` caps the schedule's timeouts, ``signal_delay_s`` is the
        checkpoint budget the report checks.
    bisect, timeout_s, verbose
        Bisect when the results differ; give up on an interrupted run after ``timeout_s``
        (default: 2 min plus ten times the reference's duration); print each step.

    Returns
    -------
    VerificationReport
        ``report.ok`` is the verdict; it shows as a widget in a notebook, as text elsewhere.

    Raises
    ------
    VerificationError
        The call cannot be verified: not checkpointable, bad options, the debug backend.
    """
    started = time.monotonic()
    delayed = _the_call(fn, args, kwargs, interrupts)
    backend = _backend(executor, cluster, folder, executor_parameters or {})
    schedule = plan_interrupts(interrupts, seed, backend.max_num_timeout)
    differs = first_difference if compare is None else user_compare(compare)
    report = _verify(delayed, backend, schedule, seed, differs, bisect, timeout_s, verbose)
    report.wall_s = time.monotonic() - started
    return report


def _verify(
    delayed: DelayedSubmission[Any],
    backend: Executor,
    schedule: list[PlannedInterrupt],
    seed: int,
    differs: Callable[[Any, Any], str | None],
    bisect: bool,
    timeout_s: float | None,
    verbose: bool,
) -> VerificationReport:
    """The reference run, then the rest (:func:`_verify_against`); the run folders are removed
    when the checkpoint passed."""
    budget, intended_delay = _signal_budget(backend)
    verification = Verification(delayed, backend, intended_delay, timeout_s, verbose)
    paths_before = path_arguments(delayed)
    report = VerificationReport(
        function=verification.name,
        cluster=backend.cluster,
        folder=str(backend.folder),
        workdir=str(verification.workdir),
        seed=seed,
        max_num_timeout=backend.max_num_timeout,
        signal_delay_s=budget,
        schedule=schedule,
        reference=verification.run("reference", "reference", []),
    )
    _verify_against(verification, report, paths_before, differs, bisect)
    if report.ok:
        shutil.rmtree(verification.workdir, ignore_errors=True)
        report.files_kept = False
    return report


def _the_call(
    fn: Callable[..., Any] | DelayedSubmission[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    interrupts: int,
) -> DelayedSubmission[Any]:
    """The call to verify, checked (callable, and checkpointable), and the interrupts' count."""
    if isinstance(interrupts, bool) or not isinstance(interrupts, int) or interrupts < 1:
        raise VerificationError(f"interrupts must be a whole number >= 1, not {interrupts!r}")
    if isinstance(fn, DelayedSubmission):
        if args or kwargs:
            raise VerificationError("give either a DelayedSubmission or fn and its arguments")
        delayed: DelayedSubmission[Any] = fn
    else:
        delayed = DelayedSubmission(fn, *args, **kwargs)
    name = callable_name(delayed.function)
    if not callable(delayed.function):
        raise VerificationError(f"{name} is not callable")
    if checkpoint_method(delayed.function) is None:
        raise VerificationError(
            f"{name} has no checkpoint() or __submitit_checkpoint__() method: there is no "
            "checkpoint to verify (a preemption would restart it from scratch)"
        )
    return delayed


def _backend(
    executor: AutoExecutor | Executor | None,
    cluster: str,
    folder: str | Path | None,
    parameters: dict[str, Any],
) -> Executor:
    """A private copy of the executor to use (the caller's is never modified), with
    ``parameters`` (``executor_parameters``) applied."""
    if executor is None:
        try:
            executor = AutoExecutor(folder or "slurm_jobs", cluster=cluster)
        except ValueError as error:
            raise VerificationError(str(error)) from None
    backend = executor.executor if isinstance(executor, AutoExecutor) else executor
    if backend.cluster == "debug":
        raise VerificationError(
            "verify_checkpoint needs jobs that run on their own (the local or slurm backend): "
            "the debug backend runs a job only when its result is asked for"
        )
    clone = copy.copy(backend)
    clone.parameters = dict(backend.parameters)
    clone._batch = None
    if parameters:
        _apply_parameters(clone, parameters)
    return clone


def _apply_parameters(executor: Executor, parameters: dict[str, Any]) -> None:
    """Executor parameters by their plain names; a ``<cluster>_`` prefix is also accepted."""
    mine: dict[str, Any] = {}
    for key, value in parameters.items():
        prefix, _, rest = key.partition("_")
        if prefix == executor.cluster and rest and key not in executor._valid_parameters():
            key = rest
        mine[key] = value
    try:
        executor.update_parameters(**mine)
    except ValueError as error:
        raise VerificationError(f"executor_parameters: {error}") from None


def _signal_budget(backend: Executor) -> tuple[float, float]:
    """(the time a checkpoint gets on the cluster, the signal delay asked for).

    The budget is what the warning signal leaves before the kill on the cluster; the
    verification jobs themselves get a long delay, so that a slow ``checkpoint()`` finishes
    and is measured against the budget.
    """
    intended_delay = float(backend.parameters.get("signal_delay_s") or DEFAULT_SIGNAL_DELAY_S)
    budget = JobInfo(
        "0",
        backend.cluster,
        str(backend.folder),
        signal_delay_s=intended_delay,
        timeout_min=backend.time_limit_min(),
    ).effective_signal_delay_s()
    if "signal_delay_s" in backend._valid_parameters():
        backend.update_parameters(signal_delay_s=max(intended_delay, VERIFY_SIGNAL_DELAY_S))
    return budget, intended_delay


def _shared_paths(
    paths_before: dict[Path, int | None], report: VerificationReport, which: str
) -> bool:
    """Whether the last run wrote to an absolute path argument (which every run shares)."""
    written = written_paths(paths_before)
    if written:
        report.problem = (
            f"the {which} run wrote {', '.join(written)}: an absolute path, shared by all the "
            "runs, so a run could resume from another's checkpoint; pass a relative path "
            "(each run has its own working directory)"
        )
    return bool(written)


def _verify_against(
    verification: Verification,
    report: VerificationReport,
    paths_before: dict[Path, int | None],
    differs: Callable[[Any, Any], str | None],
    bisect: bool,
) -> None:
    """Everything after the reference run: checks, the interrupted run, the bisection."""
    reference = report.reference
    if not reference.ok:
        report.problem = "the reference run (without interrupts) failed; fix the call first"
        return
    verification.reference_s = reference.elapsed_s or 0.0
    verification.say(f"reference: {reference.state.lower()} in {verification.reference_s:.2f} s")
    if _shared_paths(paths_before, report, "reference"):
        return
    if verification.reference_s < SHORT_RUN_S:
        report.warnings.append(
            f"the reference run took only {verification.reference_s:.2f} s: interrupts that "
            "close together hardly exercise checkpoint(); make the test call run longer"
        )
    label = plural(len(report.schedule), "interrupt")
    run = verification.run(label, "interrupted", report.schedule)
    judge(run, reference, differs)
    report.interrupted = run
    report.budget_warnings = list(run.budget)
    verification.say(f"{label}: {'equal' if run.equal else 'differ'}")
    if _shared_paths(paths_before, report, "interrupted") or run.equal or not bisect:
        return
    if run.applied == 0:
        report.problem = (
            "the results differ although no interrupt was sent: the call is not deterministic "
            "(seed its random generators)"
        )
        return
    report.first_divergence = _bisect(verification, report, differs, run.applied)


def _bisect(
    verification: Verification,
    report: VerificationReport,
    differs: Callable[[Any, Any], str | None],
    applied: int,
) -> int:
    """The first interrupt after which the results differ: runs with the first k interrupts
    only (each recorded in ``report.bisection``), halving the range each time."""
    low, high = 0, applied
    while high - low > 1:
        middle = (low + high) // 2
        label = f"first {plural(middle, 'interrupt')}"
        step = verification.run(label, f"first-{middle}", report.schedule[:middle])
        judge(step, report.reference, differs)
        verification.say(f"{label}: {'equal' if step.equal else 'differ'}")
        report.bisection.append(step)
        if step.equal:
            low = middle
        else:
            high = middle
    return high
