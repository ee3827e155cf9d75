"""The code that runs inside a job: load the payload, run it, checkpoint and requeue on signal.

Backends start it (a forked child of the local controller, or ``python -m`` in a Slurm
allocation) and give it a :class:`Runtime` that knows how that backend learns why a signal came
and how it requeues.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from . import payload
from .environment import JobEnvironment
from .events import append_event, read_events, summarize
from .files import WriteError
from .helpers import DelayedSubmission
from .info import JobInfo
from .paths import JobPaths
from .progress import flush_progress
from .unpicklable import explain_unpicklable

#: The signal a scheduler sends before preempting or timing out a job (submitit's convention).
CHECKPOINT_SIGNAL = signal.SIGUSR2


class Runtime(Protocol):
    """What the worker needs from its backend."""

    def signal_reason(self) -> str:
        """``"preemption"`` or ``"timeout"``: why the checkpoint signal was sent."""

    def requeue(self) -> None:
        """Put the job back in the queue; the current run then ends (may not return)."""


# A signal that arrives before the payload is loaded is remembered, then handled.
_early_signals: list[int] = []


def remember_early_signal(signum: int, frame: FrameType | None) -> None:
    """Signal handler for the time before the worker is ready (installed first thing)."""
    _early_signals.append(signum)


def _checkpoint_method(function: Any) -> Any:
    for name in ("__submitit_checkpoint__", "checkpoint"):
        method = getattr(function, name, None)
        if callable(method):
            return method
    return None


class SignalHandler:
    """Decide, on the checkpoint signal, whether and how the job goes back in the queue."""

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

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.busy:
            # A second signal while checkpointing: the checkpoint under way decides the
            # requeue, but this signal is recorded with its own reason (a timeout counts).
            self._event("signal", reason=self.runtime.signal_reason(), task=self.paths.task_id)
            return
        self.busy = True
        try:
            self._handle()
        finally:
            self.busy = False

    def _event(self, name: str, **fields: Any) -> None:
        append_event(self.paths.events, name, **fields)

    def _handle(self) -> None:
        flush_progress()  # the step reached, recorded before the signal that interrupts it
        reason = self.runtime.signal_reason()
        task = self.paths.task_id
        self._event("signal", reason=reason, task=task)
        print(f"jupyter_slurm_ckpt: received {reason} signal", file=sys.stderr, flush=True)
        if task != 0:  # task 0 checkpoints for the whole job
            return
        summary = summarize(read_events(self.paths.events))
        limit = self.info.max_num_timeout
        if reason == "timeout" and summary.timeouts > limit:
            self._refuse(f"timed out {summary.timeouts} times, max_num_timeout={limit}")
            return
        checkpoint = _checkpoint_method(self.delayed.function)
        if checkpoint is None:
            if reason == "timeout":
                name = type(self.delayed.function).__name__
                self._refuse(f"timed out and {name} has no checkpoint method")
                return
            self._requeue(summary.timeouts, limit, from_scratch=True)
            return
        started = time.perf_counter()
        try:
            replacement = checkpoint(*self.delayed.args, **self.delayed.kwargs)
        except Exception:
            seconds = time.perf_counter() - started
            self._event("checkpoint", seconds=round(seconds, 4), requeue=False)
            traceback.print_exc()
            self._refuse(f"checkpoint() raised {traceback.format_exc(limit=-1).strip()}")
            return
        seconds = time.perf_counter() - started
        if replacement is None:
            self._event("checkpoint", seconds=round(seconds, 4), requeue=False)
            self._refuse("checkpoint() returned None")
            return
        if not isinstance(replacement, DelayedSubmission):
            self._event("checkpoint", seconds=round(seconds, 4), requeue=False)
            self._refuse(
                f"checkpoint() returned {type(replacement).__name__}, "
                "expected a DelayedSubmission or None"
            )
            return
        try:
            size = payload.dump(replacement, self.paths.submitted_pickle)
        except OSError as error:  # the previous checkpoint is left as it was
            self._event("checkpoint", seconds=round(seconds, 4), requeue=False)
            self._refuse(f"the new payload could not be written: {error}")
            return
        except Exception as error:  # raised here, not in the user's code the signal interrupted
            self._event("checkpoint", seconds=round(seconds, 4), requeue=False)
            self._refuse(self._unpicklable(replacement, error))
            return
        self._event("checkpoint", seconds=round(seconds, 4), requeue=True, bytes=size)
        self._requeue(summary.timeouts, limit, from_scratch=False)

    def _unpicklable(self, replacement: DelayedSubmission[Any], error: Exception) -> str:
        # Named as the checkpoint method sees them: `self` when it resubmits itself.
        function = "self" if replacement.function is self.delayed.function else "function"
        roots = [(function, replacement.function)]
        roots += [(f"args[{index}]", arg) for index, arg in enumerate(replacement.args)]
        roots += [(f"kwargs[{key!r}]", value) for key, value in replacement.kwargs.items()]
        why = explain_unpicklable(roots, error, "the DelayedSubmission")
        return f"checkpoint() returned a payload that cannot be pickled: {why}"

    def _refuse(self, reason: str) -> None:
        print(f"jupyter_slurm_ckpt: not requeued: {reason}", file=sys.stderr, flush=True)
        self._event("not_requeued", reason=reason)

    def _requeue(self, timeouts: int, limit: int, *, from_scratch: bool) -> None:
        fields: dict[str, Any] = {"run": self.restart + 1}
        fields["timeouts_left"] = max(limit - timeouts, 0)
        if from_scratch:
            fields["from_scratch"] = True
        self._event("requeued", **fields)
        sys.stdout.flush()
        sys.stderr.flush()
        self.runtime.requeue()


def _write_outcome(path: Path, status: str, value: Any) -> None:
    # Streamed into the file: a result of several GB needs no second copy in memory.
    try:
        payload.dump((status, value), path)
    except WriteError:
        raise  # the filesystem's failure, not the result's
    except Exception as error:  # the result itself cannot be pickled
        message = f"the job's result of type {type(value).__name__} cannot be pickled: {error!r}"
        payload.dump(("error", message), path)


def run_task(paths: JobPaths, info: JobInfo, runtime: Runtime) -> int:
    """Run one task of a job to its end; returns the process exit code.

    The outcome (value or traceback) is written to the task's result file before returning;
    a requeue leaves through ``runtime.requeue()`` instead.
    """
    signal.signal(CHECKPOINT_SIGNAL, remember_early_signal)
    is_main_task = paths.task_id == 0
    restart = JobEnvironment().restart_count
    if is_main_task:
        append_event(
            paths.events, "started", run=restart, node=socket.gethostname(), pid=os.getpid()
        )
    try:
        delayed = payload.load(paths.submitted_pickle)
    except Exception as error:
        _write_outcome(paths.result_pickle, "error", f"{type(error).__name__}: {error}")
        append_event(paths.events, "failed", reason=str(error), task=paths.task_id)
        return 0
    handler = SignalHandler(delayed, paths, info, runtime, restart)
    signal.signal(CHECKPOINT_SIGNAL, handler)
    if _early_signals:
        _early_signals.clear()
        handler(CHECKPOINT_SIGNAL, None)
    try:
        value = delayed.result()
    except Exception:
        signal.signal(CHECKPOINT_SIGNAL, signal.SIG_IGN)  # finished: nothing left to requeue
        flush_progress()
        trace = traceback.format_exc()
        print(trace, file=sys.stderr, flush=True)
        _write_outcome(paths.result_pickle, "error", trace)
        last_line = trace.strip().splitlines()[-1]
        append_event(paths.events, "failed", reason=last_line, task=paths.task_id)
        return 0
    signal.signal(CHECKPOINT_SIGNAL, signal.SIG_IGN)
    flush_progress()
    _write_outcome(paths.result_pickle, "success", value)
    append_event(paths.events, "completed", task=paths.task_id)
    return 0
