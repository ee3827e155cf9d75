"""The code that runs inside a job: load the payload, run it, checkpoint and requeue on signal.

Backends start it (a forked child of the local controller, or ``python -m`` in a Slurm
allocation) and give it a :class:`Runtime` that knows how that backend learns why a signal came
and how it requeues.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from . import payload
from .budget import default_margin, window_s
from .environment import JobEnvironment
from .events import append_event, read_events, summarize
from .files import WriteError
from .helpers import DelayedSubmission, checkpoint_method
from .info import JobInfo
from .outcome import write_outcome
from .paths import JobPaths
from .progress import flush_progress
from .runs import ended_already, record_lost_runs, start_heartbeat
from .runtime import (
    CHECKPOINT_SIGNAL,
    TERMINATED_EXIT_CODE,
    TERMINATION_SIGNAL,
    RequeueError,
    Runtime,
    Termination,
    early_signals,
    flush_output,
    remember_early_signal,
    say,
)
from .unpicklable import explain_unpicklable

__all__ = [  # the runtime's names, importable from here too (backends and older code do)
    "CHECKPOINT_SIGNAL",
    "TERMINATED_EXIT_CODE",
    "TERMINATION_SIGNAL",
    "RequeueError",
    "Runtime",
    "SignalHandler",
    "Termination",
    "flush_output",
    "remember_early_signal",
    "run_task",
    "say",
]




class SignalHandler:
    """Decide, on a checkpoint or termination signal, whether and how the job is requeued."""

    def __init__(
        self,
        delayed: DelayedSubmission[Any] | None,
        paths: JobPaths,
        info: JobInfo,
        runtime: Runtime,
        restart: int,
    ) -> None:
        self.delayed = delayed
        self.restart = restart
        self.paths = paths
        self.info = info
        self.runtime = runtime
        self.busy = False
        #: The reason of this run's first signal (a run is checkpointed once).
        self.signalled: str | None = None
        #: Whether the callable has been called in this run. Before, the payload on disk is
        #: exactly the callable's state: a signal requeues it as it is, without calling a
        #: ``checkpoint()`` that may expect ``__call__`` to have run.
        self.calling = True
        #: Checkpoint signals that came while one was handled: recorded once it is done.
        self.late_signals = 0
        #: Whether a termination signal came while a checkpoint signal was handled.
        self.terminated_meanwhile = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """The checkpoint signal (USR2): the scheduler warns before a preemption or the limit."""
        if self.busy:
            # A second signal while checkpointing: the checkpoint under way decides the
            # requeue; this signal is recorded with its own reason (a timeout counts) once the
            # checkpoint is written, not from inside it (asking the scheduler takes time).
            self.late_signals += 1
            return
        self.busy = True
        try:
            self._handle(self.runtime.signal_reason(), via=None, requeued=False)
        finally:
            self._record_late_signals()
            self.busy = False

    def on_termination(self, signum: int, frame: FrameType | None) -> None:
        """The termination signal (SIGTERM): the scheduler ends this run now.

        A preemption without an earlier warning checkpoints as the warning would have; the
        time limit without one counts as a timeout; a cancellation leaves without a
        checkpoint. A run that handled its warning already, or is checkpointing, leaves.
        """
        if self.busy:  # checkpointing after the warning: that path requeues and leaves
            self.terminated_meanwhile = True
            say("termination signal while checkpointing: the requeue asks why first")
            return
        self.busy = True  # before asking why: a second SIGTERM meanwhile is the same ending
        verdict = self.runtime.termination()
        if verdict is None:  # the backend's rules: the run ends as it would without us
            signal.signal(TERMINATION_SIGNAL, signal.SIG_DFL)
            os.kill(os.getpid(), TERMINATION_SIGNAL)
            return
        try:
            if verdict.reason == "cancelled":
                self._cancelled()
            elif self.signalled is None:
                self._handle(verdict.reason, "SIGTERM", verdict.requeued, verdict.detail)
        finally:
            _leave(TERMINATED_EXIT_CODE)

    def _record_late_signals(self) -> None:
        while self.late_signals:
            self.late_signals -= 1
            self._event("signal", reason=self.runtime.signal_reason(), task=self.paths.task_id)

    def _event(self, name: str, **fields: Any) -> None:
        try:
            append_event(self.paths.events, name, **fields)
        except WriteError as error:  # a full disk: the checkpoint and the requeue still go on
            say(f"the {name} event could not be recorded: {error.cause()}")

    def _cancelled(self) -> None:
        if self.paths.task_id == 0 and summarize(read_events(self.paths.events)).terminal is None:
            self._event("cancelled", by="slurm")
        say("cancelled")

    def _handle(self, reason: str, via: str | None, requeued: bool, detail: str = "") -> None:
        flush_progress()  # the step reached, recorded before the signal that interrupts it
        self.signalled = reason
        window_end = time.monotonic() + self._window_s(via)
        task = self.paths.task_id
        fields: dict[str, Any] = {"reason": reason, "task": task}
        if via is not None:
            fields["via"] = via
        self._event("signal", **fields)
        say(f"received {reason} signal")
        if task != 0:  # task 0 checkpoints for the whole job
            return
        summary = summarize(read_events(self.paths.events))
        limit = self.info.max_num_timeout
        if reason == "timeout" and summary.timeouts > limit:
            self._refuse(f"timed out {summary.timeouts} times, max_num_timeout={limit}")
            return
        delayed = self.delayed if self.calling else None  # None: nothing has run yet
        checkpoint = checkpoint_method(delayed.function) if delayed is not None else None
        if delayed is not None and checkpoint is None and reason == "timeout":
            name = type(delayed.function).__name__
            self._refuse(f"timed out and {name} has no checkpoint method")
            return
        if checkpoint is not None:
            if not self._checkpointed(checkpoint):
                return
            self._record_late_signals()
        if reason == "unknown":  # the scheduler cannot tell why: a requeue could revive a cancel
            kept = "; its checkpoint is kept" if checkpoint is not None else ""
            self._refuse(f"{detail or 'the run ends and nobody says why'}{kept}")
            return
        self._requeue(
            summary.timeouts, limit, window_end, requeued,
            from_scratch=delayed is not None and checkpoint is None, before_call=delayed is None,
        )

    def _checkpointed(self, checkpoint: Callable[..., Any]) -> bool:
        """Call ``checkpoint`` with the call's arguments and write the payload it returns in
        place of the job's; False, the refusal recorded, when that fails (the payload on disk
        is then the previous checkpoint's, as it was). The event's ``seconds`` is the whole
        checkpoint, the call and the durable write of its payload (``write_s`` of it): the
        time the budget compares with what the signal leaves."""
        assert self.delayed is not None  # the callable runs
        started = time.perf_counter()
        try:
            replacement = checkpoint(*self.delayed.args, **self.delayed.kwargs)
        except Exception:
            seconds = round(time.perf_counter() - started, 4)
            self._event("checkpoint", seconds=seconds, requeue=False)
            say(traceback.format_exc().rstrip(), prefix="")
            self._refuse(f"checkpoint() raised {traceback.format_exc(limit=-1).strip()}")
            return False
        called = time.perf_counter()
        size, problem = 0, None
        if replacement is None:
            problem = "checkpoint() returned None"
        elif not isinstance(replacement, DelayedSubmission):
            name = type(replacement).__name__
            problem = f"checkpoint() returned {name}, expected a DelayedSubmission or None"
        else:
            try:
                size = payload.dump(replacement, self.paths.submitted_pickle)
            except OSError as error:  # the previous checkpoint is left as it was
                problem = f"the new payload could not be written: {error}"
            except Exception as error:  # raised here, not in the code the signal interrupted
                problem = self._unpicklable(replacement, error)
        done = time.perf_counter()
        timing = {"seconds": round(done - started, 4), "write_s": round(done - called, 4)}
        if problem is not None:
            self._event("checkpoint", **timing, requeue=False)
            self._refuse(problem)
            return False
        self._event("checkpoint", **timing, requeue=True, bytes=size)
        return True

    def _window_s(self, via: str | None) -> float:
        """How long the run has after this signal (the requeue is retried that long): the
        signal delay after the warning, KillWait after the scheduler's SIGTERM."""
        window = window_s(self.info, via)
        return max(window - default_margin(window), 1.0)

    def _unpicklable(self, replacement: DelayedSubmission[Any], error: Exception) -> str:
        # Named as the checkpoint method sees them: `self` when it resubmits itself.
        assert self.delayed is not None  # the callable runs
        function = "self" if replacement.function is self.delayed.function else "function"
        roots = [(function, replacement.function)]
        roots += [(f"args[{index}]", arg) for index, arg in enumerate(replacement.args)]
        roots += [(f"kwargs[{key!r}]", value) for key, value in replacement.kwargs.items()]
        why = explain_unpicklable(roots, error, "the DelayedSubmission")
        return f"checkpoint() returned a payload that cannot be pickled: {why}"

    def _refuse(self, reason: str) -> None:
        say(f"not requeued: {reason}")
        self._event("not_requeued", reason=reason)

    def _requeue(
        self,
        timeouts: int,
        limit: int,
        deadline: float,
        requeued: bool,
        *,
        from_scratch: bool = False,
        before_call: bool = False,
    ) -> None:
        if self.terminated_meanwhile and not requeued:  # was the SIGTERM scancel's?
            verdict = self.runtime.termination()
            if verdict is not None and verdict.reason == "cancelled":
                self._cancelled()
                _leave(TERMINATED_EXIT_CODE)
        fields: dict[str, Any] = {"run": self.restart + 1}
        fields["timeouts_left"] = max(limit - timeouts, 0)
        if from_scratch:
            fields["from_scratch"] = True
        if before_call:  # the payload is unchanged: nothing had run yet
            fields["before_call"] = True
        if requeued:
            fields["by"] = "scheduler"
        else:
            try:
                if self.runtime.requeue(deadline):  # the scheduler had done it already
                    fields["by"] = "scheduler"
            except RequeueError as error:
                self._refuse(f"requeue failed: {error}")
                append_event(
                    self.paths.events, "failed", state="FAILED", reason=f"requeue failed: {error}"
                )
                _leave(1)
        self._event("requeued", **fields)
        flush_output()
        self.runtime.end_run()


def _leave(code: int) -> NoReturn:
    """End the process now, output flushed (no cleanup of the user's code can run on)."""
    flush_output()
    os._exit(code)


def _failed(paths: JobPaths, reason: str, unwritten: str | None) -> int:
    """Record the task's failure, and why its outcome is missing if it is (``unwritten``);
    the exit code: 1 when no outcome was written, so that a scheduler sees the run fail."""
    if unwritten is not None:
        reason = f"{reason}; {unwritten}" if reason else unwritten
        say(reason)
    with contextlib.suppress(OSError):  # the disk may still be full: the log says it above
        append_event(paths.events, "failed", reason=reason, task=paths.task_id)
    return 0 if unwritten is None else 1


def run_task(paths: JobPaths, info: JobInfo, runtime: Runtime) -> int:
    """Run one task of a job to its end; returns the process exit code.

    The outcome (value or traceback) is written to the task's result file before returning;
    a requeue leaves through ``runtime.end_run()`` instead.
    """
    for signum in (CHECKPOINT_SIGNAL, TERMINATION_SIGNAL):
        signal.signal(signum, remember_early_signal)
    restart = JobEnvironment().restart_count
    ended = ended_already(paths, restart, info.num_tasks)
    if ended is not None:  # a completed callable is never called again
        say(f"not run again: the job has ended ({ended}). The scheduler ran it again (Slurm "
            "24.05+ requeues a job that ends during a preemption's grace time).")
        return 0
    # A result of an earlier run (this task completed, another was requeued) is not this
    # run's: gone before this task says it started, so that a result there after that
    # ``started`` is this run's (``runs.results_of_last_run``), whenever a kill comes.
    paths.result_pickle.unlink(missing_ok=True)
    if paths.task_id == 0:
        record_lost_runs(paths, restart)
        start_heartbeat(paths.heartbeat)
    handler = _handle_signals_from_now(paths, info, runtime, restart)
    try:
        delayed = payload.load(paths.submitted_pickle)
    except Exception as error:
        _ignore_signals()
        unwritten = write_outcome(
            paths.result_pickle, "error", f"{type(error).__name__}: {error}"
        )
        return _failed(paths, str(error), unwritten)
    # From here a signal checkpoints the running callable. Every task says it started (with
    # its node): ``_interrupt`` waits for these events, so its signal finds the callable
    # running in every task (a slow payload load shows as not started yet).
    handler.delayed = delayed
    handler.calling = True
    where = {"node": socket.gethostname(), "pid": os.getpid()}
    task = {"task": paths.task_id} if paths.task_id else {}
    append_event(paths.events, "started", run=restart, **task, **where)
    return _call(handler, delayed, paths, runtime)


def _handle_signals_from_now(
    paths: JobPaths, info: JobInfo, runtime: Runtime, restart: int
) -> SignalHandler:
    """The signal handlers, installed before the payload loads: a signal while it loads (a
    large payload may load for longer than the run has after a SIGTERM) is handled at once,
    and requeues the payload as it is. Signals that came before are handled now."""
    handler = SignalHandler(None, paths, info, runtime, restart)
    handler.calling = False
    signal.signal(CHECKPOINT_SIGNAL, handler)
    signal.signal(TERMINATION_SIGNAL, handler.on_termination)
    early, early_signals[:] = set(early_signals), []
    if CHECKPOINT_SIGNAL in early:  # the warning first
        handler(CHECKPOINT_SIGNAL, None)
    if TERMINATION_SIGNAL in early:
        handler.on_termination(TERMINATION_SIGNAL, None)
    return handler


def _call(
    handler: SignalHandler, delayed: DelayedSubmission[Any], paths: JobPaths, runtime: Runtime
) -> int:
    """Call the callable, then write its outcome and say how it ended."""
    try:
        value = delayed.result()
    except Exception:
        _ignore_signals()  # finished: nothing left to requeue
        flush_progress()
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        _follow_a_requeue(handler, paths, runtime)
        unwritten = write_outcome(paths.result_pickle, "error", trace)
        return _failed(paths, trace.strip().splitlines()[-1], unwritten)
    _ignore_signals()
    flush_progress()
    unwritten = write_outcome(paths.result_pickle, "success", value)
    if unwritten is not None:
        return _failed(paths, "", unwritten)
    append_event(paths.events, "completed", task=paths.task_id)
    return 0


def _follow_a_requeue(handler: SignalHandler, paths: JobPaths, runtime: Runtime) -> None:
    """Leave this run if a task other than 0 fails after a checkpoint signal: task 0 requeues
    the whole job on it and leaves, so what fails after (a collective whose peer left) ends
    this run, not the job."""
    if handler.signalled is not None and paths.task_id != 0:
        say(f"task {paths.task_id} stopped by the {handler.signalled} signal's requeue")
        runtime.end_run()


def _ignore_signals() -> None:
    """After the callable returned: a checkpoint signal has nothing left to save, and a
    termination waits for the outcome's write (a preemption's SIGTERM gives it KillWait; the
    write is atomic, so a SIGKILL leaves the previous state): a result finished just before a
    preemption is kept, and the run that Slurm starts next ends at once (``ended_already``)."""
    signal.signal(CHECKPOINT_SIGNAL, signal.SIG_IGN)
    signal.signal(TERMINATION_SIGNAL, signal.SIG_IGN)
