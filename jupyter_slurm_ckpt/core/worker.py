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
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Protocol

from . import payload
from .budget import default_margin, window_s
from .environment import JobEnvironment
from .events import append_event, read_events, summarize
from .files import WriteError, open_private_append
from .helpers import DelayedSubmission, checkpoint_method
from .info import JobInfo
from .outcome import write_outcome
from .paths import JobPaths
from .progress import flush_progress
from .unpicklable import explain_unpicklable

#: The signal a scheduler sends before preempting or timing out a job (submitit's convention).
CHECKPOINT_SIGNAL = signal.SIGUSR2
#: What Slurm sends when it ends a run: at the end of a preemption's grace time (the only notice
#: on clusters without ``preempt_send_user_signal``), at the time limit, and on ``scancel``.
TERMINATION_SIGNAL = signal.SIGTERM
#: Exit status of a run that was ended by a termination signal (128 + SIGTERM, as a shell says).
TERMINATED_EXIT_CODE = 128 + int(signal.SIGTERM)
#: How often a running job touches its heartbeat file (its last sign of life, if it dies).
HEARTBEAT_S = 30.0


@dataclass(frozen=True)
class Termination:
    """Why a termination signal came, as the scheduler tells it.

    Attributes
    ----------
    reason
        ``"preemption"``, ``"timeout"``, ``"cancelled"``, or ``"unknown"`` when the scheduler
        could not be asked (the checkpoint is written then, but no requeue is asked for).
    requeued
        True when the scheduler has requeued the job already (a preemption with
        ``PreemptMode=REQUEUE``): the run checkpoints and leaves, Slurm starts the next one.
    """

    reason: str
    requeued: bool = False


class RequeueError(RuntimeError):
    """The scheduler did not take the job back into its queue (the message says why)."""


class Runtime(Protocol):
    """What the worker needs from its backend."""

    def signal_reason(self) -> str:
        """``"preemption"`` or ``"timeout"``: why the checkpoint signal was sent."""

    def termination(self) -> Termination | None:
        """Why a termination signal came; None when the backend's own rules apply (it dies)."""

    def requeue(self, deadline: float) -> None:
        """Ask for the job to be requeued, retrying until ``deadline`` (``time.monotonic``).

        Returns once the scheduler took the job (a backend that requeues on the run's exit
        returns at once). Raises :class:`RequeueError` if it never did.
        """

    def end_run(self) -> NoReturn:
        """Leave this run after a requeue: the next one starts from the new payload."""


# A signal that arrives before the payload is loaded is remembered, then handled.
_early_signals: list[int] = []


def remember_early_signal(signum: int, frame: FrameType | None) -> None:
    """Signal handler for the time before the worker is ready (installed first thing)."""
    _early_signals.append(signum)


class SignalHandler:
    """Decide, on a checkpoint or termination signal, whether and how the job is requeued."""

    def __init__(
        self,
        delayed: DelayedSubmission[Any],
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

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """The checkpoint signal (USR2): the scheduler warns before a preemption or the limit."""
        if self.busy:
            # A second signal while checkpointing: the checkpoint under way decides the
            # requeue, but this signal is recorded with its own reason (a timeout counts).
            self._event("signal", reason=self.runtime.signal_reason(), task=self.paths.task_id)
            return
        self.busy = True
        try:
            self._handle(self.runtime.signal_reason(), via=None, requeued=False)
        finally:
            self.busy = False

    def on_termination(self, signum: int, frame: FrameType | None) -> None:
        """The termination signal (SIGTERM): the scheduler ends this run now.

        A preemption without an earlier warning checkpoints as the warning would have; the
        time limit without one counts as a timeout; a cancellation leaves without a
        checkpoint. A run that handled its warning already, or is checkpointing, leaves.
        """
        if self.busy:  # checkpointing after the warning: that path requeues and leaves
            return
        verdict = self.runtime.termination()
        if verdict is None:  # the backend's rules: the run ends as it would without us
            signal.signal(TERMINATION_SIGNAL, signal.SIG_DFL)
            os.kill(os.getpid(), TERMINATION_SIGNAL)
            return
        self.busy = True
        try:
            if verdict.reason == "cancelled":
                self._cancelled()
            elif self.signalled is None:
                self._handle(verdict.reason, via="SIGTERM", requeued=verdict.requeued)
        finally:
            _leave(TERMINATED_EXIT_CODE)

    def _event(self, name: str, **fields: Any) -> None:
        try:
            append_event(self.paths.events, name, **fields)
        except WriteError as error:  # a full disk: the checkpoint and the requeue still go on
            say(f"the {name} event could not be recorded: {error.cause()}")

    def _cancelled(self) -> None:
        if self.paths.task_id == 0 and summarize(read_events(self.paths.events)).terminal is None:
            self._event("cancelled", by="slurm")
        say("cancelled")

    def _handle(self, reason: str, via: str | None, requeued: bool) -> None:
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
        if not self.calling:
            self._requeue(summary.timeouts, limit, window_end, requeued, before_call=True)
            return
        checkpoint = checkpoint_method(self.delayed.function)
        if checkpoint is None:
            if reason == "timeout":
                name = type(self.delayed.function).__name__
                self._refuse(f"timed out and {name} has no checkpoint method")
                return
            self._requeue(summary.timeouts, limit, window_end, requeued, from_scratch=True)
            return
        if not self._checkpointed(checkpoint):
            return
        if reason == "unknown":  # the scheduler could not be asked: a requeue could revive
            self._refuse("the scheduler could not be asked why the run ends; checkpoint kept")
            return
        self._requeue(summary.timeouts, limit, window_end, requeued)

    def _checkpointed(self, checkpoint: Callable[..., Any]) -> bool:
        """Call ``checkpoint`` with the call's arguments and write the payload it returns in
        place of the job's; False, the refusal recorded, when that fails (the payload on disk
        is then the previous checkpoint's, as it was). The event's ``seconds`` is the whole
        checkpoint, the call and the durable write of its payload (``write_s`` of it): the
        time the budget compares with what the signal leaves."""
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
                self.runtime.requeue(deadline)
            except RequeueError as error:
                self._refuse(f"requeue failed: {error}")
                append_event(
                    self.paths.events, "failed", state="FAILED", reason=f"requeue failed: {error}"
                )
                _leave(1)
        self._event("requeued", **fields)
        flush_output()
        self.runtime.end_run()


def say(message: str, prefix: str = "jupyter_slurm_ckpt: ") -> None:
    """Write a line to the task's stderr from a signal handler.

    Straight to the file descriptor: the handler may have interrupted the job in the middle
    of a ``print``, and Python's buffered streams refuse to be entered again then.
    """
    with contextlib.suppress(OSError):
        os.write(2, f"{prefix}{message}\n".encode(errors="replace"))


def flush_output() -> None:
    """Flush what the job printed before its run ends (not possible, and skipped, when the
    signal interrupted a write of that same stream)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _leave(code: int) -> NoReturn:
    """End the process now, output flushed (no cleanup of the user's code can run on)."""
    flush_output()
    os._exit(code)


def record_lost_runs(paths: JobPaths, restart: int) -> None:
    """Say so when this run starts after requeues nobody recorded (SIGKILL, node failure...).

    ``restart`` is the scheduler's count of earlier runs; each one the events do not know a
    ``requeued`` of gets a ``requeued {reason: unknown}`` event, with ``lost_progress`` (no
    checkpoint was written after that run started) and how long the lost run had worked.
    """
    events = read_events(paths.events)
    missing = restart - summarize(events).requeues
    if missing <= 0:
        return
    started = [e for e in events if e["event"] == "started" and e.get("task", 0) == 0]
    last_start = started[-1] if started else None
    fields: dict[str, Any] = {"reason": "unknown", "lost_progress": True}
    if last_start is not None:
        after = [e for e in events if e["t"] >= last_start["t"]]
        fields["lost_progress"] = not any(
            e["event"] == "checkpoint" and e.get("requeue") for e in after
        )
        last_sign = max([e["t"] for e in after] + _mtimes(paths))
        fields["worked_s"] = round(max(0.0, last_sign - float(last_start["t"])), 1)
    for number in range(restart - missing + 1, restart + 1):
        append_event(paths.events, "requeued", run=number, **fields)
        fields.pop("worked_s", None)  # the time belongs to the last run that started


def start_heartbeat(path: Path, period_s: float = HEARTBEAT_S) -> None:
    """Touch ``path`` now and every ``period_s`` from a daemon thread, while the process lives.

    Its modification time is the run's last sign of life: a run killed without a word (SIGKILL,
    a node that died) is known to have worked until then.
    """

    def beat() -> None:
        while True:
            with contextlib.suppress(OSError):
                os.close(open_private_append(path))  # created 0600 like every job file
                os.utime(path)
            time.sleep(period_s)

    threading.Thread(target=beat, name="jupyter_slurm_ckpt-heartbeat", daemon=True).start()


def _mtimes(paths: JobPaths) -> list[float]:
    """When the job's heartbeat and the task's logs were last written (signs of life)."""
    found = []
    for path in (paths.heartbeat, paths.stdout, paths.stderr):
        with contextlib.suppress(OSError):
            found.append(path.stat().st_mtime)
    return found


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
    if paths.task_id == 0:
        record_lost_runs(paths, restart)
        start_heartbeat(paths.heartbeat)
    try:
        delayed = payload.load(paths.submitted_pickle)
    except Exception as error:
        unwritten = write_outcome(
            paths.result_pickle, "error", f"{type(error).__name__}: {error}"
        )
        return _failed(paths, str(error), unwritten)
    handler = SignalHandler(delayed, paths, info, runtime, restart)
    handler.calling = False
    signal.signal(CHECKPOINT_SIGNAL, handler)
    signal.signal(TERMINATION_SIGNAL, handler.on_termination)
    early, _early_signals[:] = set(_early_signals), []
    if CHECKPOINT_SIGNAL in early:  # signals that came while loading: the warning first
        handler(CHECKPOINT_SIGNAL, None)
    if TERMINATION_SIGNAL in early:
        handler.on_termination(TERMINATION_SIGNAL, None)
    # From here a signal checkpoints the running callable. Every task says it started (with
    # its node): ``_interrupt`` waits for these events, so its signal finds the callable
    # running in every task (a slow payload load shows as not started yet).
    handler.calling = True
    where = {"node": socket.gethostname(), "pid": os.getpid()}
    task = {"task": paths.task_id} if paths.task_id else {}
    append_event(paths.events, "started", run=restart, **task, **where)
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
    termination ends the process as it would any program (the result's write is atomic)."""
    signal.signal(CHECKPOINT_SIGNAL, signal.SIG_IGN)
    signal.signal(TERMINATION_SIGNAL, signal.SIG_DFL)
