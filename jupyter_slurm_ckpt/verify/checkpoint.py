"""Checkpoint verification: prove a callable's checkpointing correct before the long run.

:func:`verify_checkpoint` runs the same call twice through a real backend: once without
interruption (the reference), then once with N interrupts sent by ``job._interrupt()`` at
seeded, reproducible moments (a mix of preemptions and timeouts). It compares the two results;
when they differ it re-runs the call with the first k interrupts only (a bisection) to name the
first interrupt after which the results diverge.

Each run works in its own fresh working directory (``<job folder>/verify/<name>-<stamp>/<run>``):
a checkpoint written to a *relative* path (``"ckpt/net.npz"``) belongs to that run alone, so the
interrupted run cannot resume from the reference's checkpoint, and a checkpoint left by an
earlier notebook run is never picked up. The directory change happens inside the job (the
callable is wrapped in :class:`RunInFolder`), so it works on every backend.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FuturesTimeoutError
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..backends.auto import AutoExecutor
from ..core.budget import check_budget
from ..core.errors import FailedJobError, UncompletedJobError
from ..core.events import summarize
from ..core.executor import Executor
from ..core.files import ensure_private_folder
from ..core.helpers import DelayedSubmission, checkpoint_method
from ..core.info import JobInfo, callable_name
from ..core.job import Job
from ..core.parameters import DEFAULT_SIGNAL_DELAY_S
from ..core.paths import PackagePaths
from ..views.words import plural
from .report import (
    InterruptRecord,
    PlannedInterrupt,
    RunOutcome,
    VerificationReport,
    failure_line,
)

__all__ = [
    "RunInFolder",
    "VerificationError",
    "VerificationReport",
    "first_difference",
    "plan_interrupts",
    "verify_checkpoint",
]

#: Relative and absolute tolerances of the default comparison (floats and numpy arrays).
RTOL = 1e-7
ATOL = 1e-12
#: Interrupt moments are drawn in this part of the reference run (fractions of its duration).
FRACTION_RANGE = (0.05, 0.9)
#: The verification jobs' own signal delay: a slow checkpoint() is allowed to finish (and is
#: measured against the delay the user asked for, which the budget check uses).
VERIFY_SIGNAL_DELAY_S = 600.0
#: A reference run shorter than this hardly leaves room for interrupts: say so.
SHORT_RUN_S = 0.5
_POLL_S = 0.01
_CLOCK_SKEW_S = 1.0  # a job's event times come from its node's clock


class VerificationError(ValueError):
    """The call cannot be verified as given (a one-line explanation)."""


# -- running the callable in its own working directory -------------------------------------------


@contextlib.contextmanager
def working_directory(folder: str) -> Iterator[None]:
    """Change the working directory for the block, then restore it."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


class RunInFolder:
    """``function`` run with ``folder`` as its working directory (a verification run's own).

    Importable (pickled by reference): the job unpickles it from the installed package.
    """

    def __init__(self, function: Callable[..., Any], folder: str) -> None:
        self.function = function
        self.folder = folder

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with working_directory(self.folder):
            return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"RunInFolder({callable_name(self.function)}, {self.folder!r})"


class CheckpointableRunInFolder(RunInFolder):
    """A :class:`RunInFolder` whose callable checkpoints: so does the wrapper, in its folder."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callable's own checkpoint and keep what it resubmits in the same folder."""
        method = checkpoint_method(self.function)
        assert method is not None  # in_folder wraps only a checkpointable callable in this class
        with working_directory(self.folder):
            replacement = method(*args, **kwargs)
        if not isinstance(replacement, DelayedSubmission):
            return replacement  # None or a wrong type: the worker reports it as usual
        return DelayedSubmission(
            in_folder(replacement.function, self.folder),
            *replacement.args,
            **replacement.kwargs,
        )


def in_folder(function: Callable[..., Any], folder: str) -> RunInFolder:
    """Wrap ``function`` to run in ``folder``, checkpointable if and only if it is."""
    if checkpoint_method(function) is None:
        return RunInFolder(function, folder)
    return CheckpointableRunInFolder(function, folder)


# -- the schedule -------------------------------------------------------------------------------


def plan_interrupts(count: int, seed: int = 0, max_num_timeout: int = 3) -> list[PlannedInterrupt]:
    """The interrupt schedule: ``count`` moments and reasons, the same for the same seed.

    Moments are fractions of the reference run's duration, one drawn in each of ``count``
    equal slices of :data:`FRACTION_RANGE` (so no two fall on top of each other). Reasons mix
    preemptions and timeouts: at least one of each when ``count >= 2`` and
    ``max_num_timeout >= 1``, and never more timeouts than ``max_num_timeout``.
    """
    generator = random.Random(seed)
    low, high = FRACTION_RANGE
    width = (high - low) / count
    fractions = [low + width * (i + 0.1 + 0.8 * generator.random()) for i in range(count)]
    limit = min(max_num_timeout, count - 1 if count > 1 else 1)
    timeouts = generator.randint(1 if count > 1 else 0, limit) if limit >= 1 else 0
    timed_out = set(generator.sample(range(count), timeouts))
    return [
        PlannedInterrupt(i + 1, fraction, "timeout" if i in timed_out else "preemption")
        for i, fraction in enumerate(fractions)
    ]


# -- comparing results -------------------------------------------------------------------------


def _short(value: Any) -> str:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():  # numpy scalar: show the number
        with contextlib.suppress(Exception):
            value = item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return False
    if isinstance(value, (int, float)):
        return True
    return numpy is not None and isinstance(value, (numpy.integer, numpy.floating))


def _numbers_differ(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return bool(a != b)
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return not (math.isnan(a) and math.isnan(b))
    return not math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def _arrays_differ(path: str, a: Any, b: Any, rtol: float, atol: float) -> str | None:
    numpy = sys.modules["numpy"]
    if not isinstance(a, numpy.ndarray) or not isinstance(b, numpy.ndarray):
        return f"{path}: {type(a).__name__} (reference) vs {type(b).__name__}"
    if a.shape != b.shape:
        return f"{path}: shape {a.shape} (reference) vs {b.shape}"
    numeric = a.dtype.kind in "fciu" and b.dtype.kind in "fciu"
    if numeric:
        close = numpy.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        if bool(close.all()):
            return None
        where = tuple(int(i) for i in numpy.argwhere(~close)[0])
        return (
            f"{path}: {int((~close).sum())} of {a.size} elements differ, first at {where}: "
            f"{_short(a[where])} (reference) vs {_short(b[where])}"
        )
    return None if numpy.array_equal(a, b) else f"{path}: arrays differ"


def first_difference(
    reference: Any, value: Any, *, rtol: float = RTOL, atol: float = ATOL, path: str = "result"
) -> str | None:
    """Where ``value`` differs from ``reference`` first, in words; None when they are equal.

    Floats and numpy arrays are compared with a tolerance (``math.isclose`` /
    ``numpy.isclose``; NaN equals NaN), dicts, lists and tuples element by element, anything
    else with ``==``.
    """
    numpy = sys.modules.get("numpy")  # no array can exist unless numpy was imported
    if numpy is not None and (
        isinstance(reference, numpy.ndarray) or isinstance(value, numpy.ndarray)
    ):
        return _arrays_differ(path, reference, value, rtol, atol)
    if _is_number(reference) and _is_number(value):
        if _numbers_differ(reference, value, rtol, atol):
            return f"{path}: {_short(reference)} (reference) vs {_short(value)}"
        return None
    if isinstance(reference, dict) and isinstance(value, dict):
        missing = [key for key in reference if key not in value]
        extra = [key for key in value if key not in reference]
        if missing or extra:
            return f"{path}: keys differ (missing {missing}, unexpected {extra})"
        for key in reference:
            found = first_difference(
                reference[key], value[key], rtol=rtol, atol=atol, path=f"{path}[{key!r}]"
            )
            if found:
                return found
        return None
    if isinstance(reference, (list, tuple)) and isinstance(value, (list, tuple)):
        if type(reference) is not type(value):
            return f"{path}: {type(reference).__name__} (reference) vs {type(value).__name__}"
        if len(reference) != len(value):
            return f"{path}: length {len(reference)} (reference) vs {len(value)}"
        for index, (a, b) in enumerate(zip(reference, value)):
            found = first_difference(a, b, rtol=rtol, atol=atol, path=f"{path}[{index}]")
            if found:
                return found
        return None
    try:
        equal = reference == value
        same = equal if isinstance(equal, bool) else bool(numpy.all(equal) if numpy else equal)
    except Exception:  # an == that raises or cannot be reduced to one answer
        same = reference is value
    return None if same else f"{path}: {_short(reference)} (reference) vs {_short(value)}"


# -- one verification -----------------------------------------------------------------------


@dataclass
class _Sent:
    """An interrupt the verifier sent: which, into which run, when."""

    planned: PlannedInterrupt
    run: int
    after_s: float
    at: float
    files_bytes: int | None = None


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def _path_arguments(delayed: DelayedSubmission[Any]) -> dict[Path, int | None]:
    """Absolute paths among the arguments, with their modification time (None: missing)."""
    found: dict[Path, int | None] = {}
    for value in [*delayed.args, *delayed.kwargs.values()]:
        if not isinstance(value, (str, os.PathLike)):
            continue
        text = os.fspath(value)
        if not isinstance(text, str) or not text or "\n" in text or len(text) > 4096:
            continue
        path = Path(text).expanduser()
        if path.is_absolute():
            found[path] = _mtime(path)
    return found


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _progress_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("t", "event", "run")}


def _interrupt_records(
    events: list[dict[str, Any]], sent: list[_Sent], schedule: list[PlannedInterrupt]
) -> list[InterruptRecord]:
    """One record per signal the job recorded, matched with the interrupts the verifier sent."""
    observed: list[tuple[float, InterruptRecord]] = []
    requeued_at: dict[int, float] = {}
    progress: dict[int, list[dict[str, Any]]] = {}
    run = 0
    for event in events:
        name = event.get("event")
        t = float(event.get("t", 0.0))
        current = observed[-1][1] if observed else None
        if name == "started":
            run = int(event.get("run", run))
            if current is not None and current.requeued and current.next_run is None:
                current.next_run = run
                current.requeue_gap_s = max(0.0, t - requeued_at[len(observed) - 1])
        elif name == "progress":
            progress.setdefault(int(event.get("run", run)), []).append(event)
        elif name == "signal" and event.get("task", 0) == 0:
            observed.append((t, InterruptRecord(None, run=run, reason=event.get("reason"))))
        elif current is None:
            continue
        elif name == "checkpoint":
            current.checkpoint_s = float(event.get("seconds", 0.0))
            if event.get("bytes") is not None:
                current.checkpoint_bytes = int(event["bytes"])
        elif name == "requeued":
            current.requeued = True
            requeued_at[len(observed) - 1] = t
        elif name == "not_requeued":  # its last line: a traceback ends with the error
            lines = str(event.get("reason", "")).strip().splitlines()
            current.not_requeued = lines[-1].strip() if lines else "no reason recorded"
    for t, record in observed:
        before = [p for p in progress.get(record.run, []) if float(p.get("t", 0.0)) <= t]
        if len(before) > 1:  # progress reported after the run's start: where it got to
            record.progress_before = _progress_fields(before[-1])
        if record.next_run is not None and progress.get(record.next_run):
            record.resumed_at = _progress_fields(progress[record.next_run][0])
    records: list[InterruptRecord] = []
    unmatched = list(observed)
    for item in sent:
        match = next((pair for pair in unmatched if pair[0] >= item.at - _CLOCK_SKEW_S), None)
        if match is None:
            record = InterruptRecord(item.planned, run=item.run, note="no signal recorded")
        else:
            unmatched.remove(match)
            record = match[1]
            record.planned = item.planned
        record.after_s = item.after_s
        record.files_bytes = item.files_bytes
        records.append(record)
    records += [record for _, record in unmatched]  # signals of a real time limit
    records.sort(key=lambda r: (r.run, r.planned.index if r.planned else 0))
    done = {item.planned.index for item in sent}
    records += [
        InterruptRecord(p, applied=False, note="not sent: the job had already ended")
        for p in schedule
        if p.index not in done
    ]
    return records


class _Overdue(Exception):
    """A verification run did not finish in time."""


class _Verification:
    """The state of one :func:`verify_checkpoint` call: executor, folders, reference."""

    def __init__(
        self,
        delayed: DelayedSubmission[Any],
        executor: Executor,
        intended_delay_s: float,
        compare: Callable[[Any, Any], str | None],
        timeout_s: float | None,
        verbose: bool,
    ) -> None:
        self.delayed = delayed
        self.executor = executor
        self.intended_delay_s = intended_delay_s
        self.compare = compare
        self.timeout_s = timeout_s
        self.verbose = verbose
        self.name = callable_name(delayed.function)
        stamp = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.workdir = PackagePaths.of(executor.folder).verification(self.name, stamp)
        self.reference_s = 0.0
        #: Whether the reference run reported progress (``report_progress``) when it started:
        #: each interrupted run is then interrupted only after it did too (once its callable
        #: runs), so that an interrupt never lands while the run is still loading.
        self.reports_progress = False

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"verify_checkpoint: {message}", flush=True)

    def submit(self, label: str, slug: str) -> tuple[Job[Any], Path]:
        folder = ensure_private_folder(self.workdir / slug)
        wrapped = in_folder(self.delayed.function, str(folder))
        self.executor.update_parameters(name=f"verify-{self.name}")
        job = self.executor.submit(wrapped, *self.delayed.args, **self.delayed.kwargs)
        self.say(f"{label}: job {job.job_id}")
        return job, folder

    def run(self, label: str, slug: str, schedule: list[PlannedInterrupt]) -> RunOutcome:
        """Run the call once, sending the interrupts of ``schedule``; compare nothing yet."""
        job, folder = self.submit(label, slug)
        sent: list[_Sent] = []
        limit = self.timeout_s
        if limit is None and schedule:
            limit = 120.0 + 10.0 * self.reference_s
        deadline = math.inf if limit is None else time.monotonic() + limit
        overdue = False
        try:
            self._interrupt(job, folder, schedule, sent, deadline)
            try:
                job.wait(timeout=None if limit is None else max(0.0, deadline - time.monotonic()))
            except (FuturesTimeoutError, TimeoutError):
                raise _Overdue from None
        except _Overdue:
            overdue = True
            job.cancel()
        except BaseException:  # KeyboardInterrupt included: leave no job running behind
            job.cancel()
            raise
        outcome = self.outcome(job, label, folder, sent, schedule)
        if overdue:
            outcome.error = f"did not finish within {limit:.0f} s: cancelled by the verifier"
        return outcome

    def _interrupt(
        self,
        job: Job[Any],
        folder: Path,
        schedule: list[PlannedInterrupt],
        sent: list[_Sent],
        deadline: float,
    ) -> None:
        previous_run, previous_fraction = -1, 0.0
        for planned in schedule:
            gap = (planned.fraction - previous_fraction) * self.reference_s
            while True:
                started = self._wait_for_new_run(job, previous_run, deadline)
                if started is None:
                    return  # the job ended before this interrupt's moment
                run, started_at = started
                if sent and sent[-1].files_bytes is None:
                    sent[-1].files_bytes = _folder_bytes(folder)
                if not self._sleep_until(job, started_at + gap, deadline):
                    return
                try:
                    job._interrupt(timeout=planned.reason == "timeout")
                except (UncompletedJobError, RuntimeError):
                    if job.done():
                        return
                    previous_run = run  # requeued meanwhile (a time limit): next run then
                    continue
                now = time.time()
                sent.append(_Sent(planned, run, now - started_at, now))
                break
            previous_run, previous_fraction = run, planned.fraction
        if sent and self._wait_for_new_run(job, previous_run, deadline) is not None:
            sent[-1].files_bytes = _folder_bytes(folder)  # what the last checkpoint left

    def _wait_for_new_run(
        self, job: Job[Any], after_run: int, deadline: float
    ) -> tuple[int, float] | None:
        """(run, start time) once a run later than ``after_run`` is RUNNING (and has reported
        progress, when the reference did); None if it ended."""
        while True:
            events = job.events()
            runs = [e for e in events if e.get("event") == "started"]
            run = int(runs[-1].get("run", 0)) if runs else -1
            reported = not self.reports_progress or any(
                e["event"] == "progress" and e.get("run") == run for e in events
            )
            if run > after_run and reported and job.state == "RUNNING":
                return run, min(float(runs[-1]["t"]), time.time())
            if job.done():
                return None
            if any(e.get("event") == "not_requeued" for e in events):
                # On a cluster it would now be killed (here its signal delay is long): stop it.
                job.cancel()
                return None
            if time.monotonic() > deadline:
                raise _Overdue
            time.sleep(_POLL_S)

    def _sleep_until(self, job: Job[Any], moment: float, deadline: float) -> bool:
        """Sleep until ``moment`` (unix time); False if the job ended meanwhile."""
        while time.time() < moment:
            if job.done():
                return False
            if time.monotonic() > deadline:
                raise _Overdue
            time.sleep(min(_POLL_S, max(0.0, moment - time.time())))
        return not job.done()

    def outcome(
        self,
        job: Job[Any],
        label: str,
        folder: Path,
        sent: list[_Sent],
        schedule: list[PlannedInterrupt],
    ) -> RunOutcome:
        events = job.events()
        value, error = None, None
        try:
            value = job.result()
        except (FailedJobError, UncompletedJobError) as failure:
            error = str(failure)
        summary = summarize(events)
        elapsed = None
        if summary.started_at is not None and summary.ended_at is not None:
            elapsed = summary.ended_at - summary.started_at
        outcome = RunOutcome(label, job.job_id, str(folder), job.state, value, error, elapsed)
        if not schedule and label == "reference":
            self.reports_progress = any(e["event"] == "progress" for e in events)
        if schedule:
            outcome.interrupts = _interrupt_records(events, sent, schedule)
            budget_info = replace(job.info, signal_delay_s=self.intended_delay_s)
            self._attach_budget(outcome, events, budget_info)
        return outcome

    def _attach_budget(
        self, outcome: RunOutcome, events: list[dict[str, Any]], info: JobInfo
    ) -> None:
        warnings = check_budget(events, info)
        for warning in warnings:
            for record in outcome.interrupts:
                if record.run == warning.run and record.applied and record.budget is None:
                    record.budget = warning.message
                    break
        outcome.budget = [warning.message for warning in warnings]

    def judge(self, outcome: RunOutcome, reference: RunOutcome) -> None:
        """Set ``outcome.equal`` and ``outcome.difference`` against the reference."""
        refused = next((r for r in outcome.interrupts if r.not_requeued is not None), None)
        if refused is not None:
            which = f"interrupt {refused.planned.index}" if refused.planned else "a signal"
            outcome.equal = False
            outcome.difference = f"not requeued after {which}: {refused.not_requeued}"
            return
        if not outcome.ok:
            outcome.equal = False
            outcome.difference = f"the run failed: {failure_line(outcome.error or outcome.state)}"
            return
        outcome.difference = self.compare(reference.value, outcome.value)
        outcome.equal = outcome.difference is None


def _user_compare(compare: Callable[[Any, Any], Any]) -> Callable[[Any, Any], str | None]:
    def judge(reference: Any, value: Any) -> str | None:
        try:
            same = compare(reference, value)
        except Exception as error:
            return f"compare() raised {type(error).__name__}: {error}"
        return None if same else "compare(reference, result) returned False"

    return judge


def _backend(
    executor: AutoExecutor | Executor | None, cluster: str, folder: str | Path | None
) -> Executor:
    """A private copy of the executor to use (the caller's is never modified)."""
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
    """Run ``fn(*args, **kwargs)`` uninterrupted and with interrupts; compare the results.

    The call runs as real jobs: once without interruption (the reference), then once with
    ``interrupts`` simulated preemptions and timeouts (``job._interrupt()``) at reproducible
    moments, each sent once the job is RUNNING again. If the results differ, the call is run
    again with the first k interrupts only, bisecting the schedule to name the first interrupt
    after which the results diverge. Each run has its own empty working directory, so
    checkpoints written to relative paths never leak from one run to another.

    Parameters
    ----------
    fn
        The checkpointable callable (with ``checkpoint`` or ``__submitit_checkpoint__``), or a
        ready ``DelayedSubmission`` (then no ``args``/``kwargs``; use that form when the call
        takes keyword arguments named like the options below).
    *args, **kwargs
        The call's arguments. Give checkpoint paths *relative*: each run resolves them in its
        own working directory. The call must be deterministic (seed its random generators).
    interrupts
        How many interrupts the interrupted run gets.
    seed
        Seeds the schedule: the same seed gives the same moments and reasons.
    compare
        ``compare(reference, result) -> bool``; default: ``==``, with a tolerance for floats
        and numpy arrays, recursively in dicts, lists and tuples (:func:`first_difference`).
    cluster
        Backend when no ``executor`` is given: ``"local"`` (default) or ``"slurm"``/``"auto"``.
    folder
        Job folder when no ``executor`` is given (default ``slurm_jobs``).
    executor
        An executor (e.g. the one ``%%slurm`` builds) whose backend, folder and parameters the
        verification jobs use; it is copied, never modified.
    executor_parameters
        Executor parameters by name, e.g. ``{"timeout_min": 10, "max_num_timeout": 2,
        "signal_delay_s": 30}``. ``max_num_timeout`` caps the timeouts of the schedule;
        ``signal_delay_s`` is the checkpoint budget the report checks (the verification jobs
        themselves let a slow ``checkpoint()`` finish, to measure it).
    bisect
        Bisect the schedule when the results differ.
    timeout_s
        Give up on a run with interrupts after this long (default: 2 minutes plus ten times
        the reference's duration); the reference waits as long as it runs.
    verbose
        Print one line per step.

    Returns
    -------
    VerificationReport
        ``report.ok`` is the verdict; it displays as a widget in a notebook and as text.

    Raises
    ------
    VerificationError
        When the call cannot be verified: not checkpointable, bad options, debug backend.
    """
    started = time.monotonic()
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
    if isinstance(interrupts, bool) or not isinstance(interrupts, int) or interrupts < 1:
        raise VerificationError(f"interrupts must be a whole number >= 1, not {interrupts!r}")
    backend = _backend(executor, cluster, folder)
    if executor_parameters:
        _apply_parameters(backend, executor_parameters)
    max_num_timeout = backend.max_num_timeout
    intended_delay = float(backend.parameters.get("signal_delay_s") or DEFAULT_SIGNAL_DELAY_S)
    budget = JobInfo(
        "0",
        backend.cluster,
        str(backend.folder),
        signal_delay_s=intended_delay,
        timeout_min=backend.time_limit_min(),
    ).effective_signal_delay_s()  # what the signal leaves before the kill, on the cluster
    if "signal_delay_s" in backend._valid_parameters():
        backend.update_parameters(signal_delay_s=max(intended_delay, VERIFY_SIGNAL_DELAY_S))
    judge = first_difference if compare is None else _user_compare(compare)
    verification = _Verification(delayed, backend, intended_delay, judge, timeout_s, verbose)
    schedule = plan_interrupts(interrupts, seed, max_num_timeout)
    paths_before = _path_arguments(delayed)
    reference = verification.run("reference", "reference", [])
    report = VerificationReport(
        function=name,
        cluster=backend.cluster,
        folder=str(backend.folder),
        workdir=str(verification.workdir),
        seed=seed,
        max_num_timeout=max_num_timeout,
        signal_delay_s=budget,
        schedule=schedule,
        reference=reference,
    )
    try:
        _verify_against(verification, report, paths_before, bisect)
    finally:
        report.wall_s = time.monotonic() - started
    if report.ok:
        shutil.rmtree(verification.workdir, ignore_errors=True)
        report.files_kept = False
    return report


def _shared_paths(
    paths_before: dict[Path, int | None], report: VerificationReport, which: str
) -> bool:
    """Whether the last run wrote to an absolute path argument (which every run shares)."""
    written = [
        str(path)
        for path, before in paths_before.items()
        if _mtime(path) != before and (before is None or path.is_file())
    ]
    if written:
        report.problem = (
            f"the {which} run wrote {', '.join(written)}: an absolute path, shared by all the "
            "runs, so a run could resume from another's checkpoint; pass a relative path "
            "(each run has its own working directory)"
        )
    return bool(written)


def _verify_against(
    verification: _Verification,
    report: VerificationReport,
    paths_before: dict[Path, int | None],
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
    schedule = report.schedule
    label = plural(len(schedule), "interrupt")
    run = verification.run(label, "interrupted", schedule)
    verification.judge(run, reference)
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
    low, high = 0, run.applied
    while high - low > 1:
        middle = (low + high) // 2
        step_label = f"first {plural(middle, 'interrupt')}"
        step = verification.run(step_label, f"first-{middle}", schedule[:middle])
        verification.judge(step, reference)
        verification.say(f"{step_label}: {'equal' if step.equal else 'differ'}")
        report.bisection.append(step)
        if step.equal:
            low = middle
        else:
            high = middle
    report.first_divergence = high
