"""submitit's ``helpers``: the submission object, checkpointable bases and small utilities."""

from __future__ import annotations

import collections
import contextlib
import datetime
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import payload
from .errors import FailedJobError

if TYPE_CHECKING:
    from .job import Job

R = TypeVar("R")


class DelayedSubmission(Generic[R]):
    """A callable with its arguments, to be run later (what ``checkpoint()`` returns).

    ``executor.submit(fn, *args, **kwargs)`` pickles ``DelayedSubmission(fn, *args, **kwargs)``;
    returning one from ``checkpoint()`` replaces the job's payload before it is requeued.
    """

    def __init__(self, function: Callable[..., R], /, *args: Any, **kwargs: Any) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self._result: Any = None
        self._done = False

    def result(self) -> R:
        """Call the function once (later calls return the cached value)."""
        if not self._done:
            self._result = self.function(*self.args, **self.kwargs)
            self._done = True
        value: R = self._result
        return value

    def done(self) -> bool:
        """Whether :meth:`result` has run."""
        return self._done

    def dump(self, path: str | Path) -> None:
        """Pickle this submission to ``path`` (atomically, in the job folder's format)."""
        payload.dump(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> DelayedSubmission[Any]:
        """A submission pickled by :meth:`dump` (or a job's ``<id>_submitted.pkl``)."""
        loaded = payload.load(Path(path))
        if not isinstance(loaded, DelayedSubmission):
            raise TypeError(f"{path} holds a {type(loaded).__name__}, not a DelayedSubmission")
        return loaded

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", type(self.function).__qualname__)
        return f"DelayedSubmission({name}, {len(self.args)} args, {len(self.kwargs)} kwargs)"


def checkpoint_method(function: Any) -> Callable[..., Any] | None:
    """What the checkpoint protocol calls on ``function`` when its job is interrupted: its
    ``__submitit_checkpoint__`` or else its ``checkpoint`` method; None when it has neither
    (a preemption then restarts it from scratch, a timeout ends it)."""
    for name in ("__submitit_checkpoint__", "checkpoint"):
        method = getattr(function, name, None)
        if callable(method):
            return method
    return None


class Checkpointable:
    """Base class whose ``checkpoint`` requeues the callable as it is, with the same arguments.

    Subclasses keep their progress in attributes (pickled at the checkpoint) and skip the
    work already done when called again.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Takes (and leaves to __init__) any arguments, so that a subclass without its own
        # __init__ or __new__ can still be built with some, as in submitit.
        instance = super().__new__(cls)
        if not callable(instance):
            raise TypeError(
                f"{cls.__name__} is a Checkpointable but has no __call__ method: add one"
            )
        return instance

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission[Any]:
        """Resubmit ``self`` in its current state with the original arguments."""
        return DelayedSubmission(self, *args, **kwargs)  # type: ignore[arg-type]


class FunctionSequence(Checkpointable):
    """Run functions one after the other; a requeued sequence resumes at the first unfinished.

    Call :meth:`add` for each function, submit the sequence; its result is the list of results.
    """

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.delayed_functions: list[DelayedSubmission[Any]] = []

    def add(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Append ``func(*args, **kwargs)`` to the sequence."""
        self.delayed_functions.append(DelayedSubmission(func, *args, **kwargs))

    def __len__(self) -> int:
        return len(self.delayed_functions)

    def __iter__(self) -> Iterator[DelayedSubmission[Any]]:
        return iter(self.delayed_functions)

    def __call__(self) -> list[Any]:
        if self.verbose:  # submitit's words: where a requeued sequence resumes
            done = sum(delayed.done() for delayed in self.delayed_functions)
            print(f"Starting from {done}/{len(self.delayed_functions)}", flush=True)
        for index, delayed in enumerate(self.delayed_functions):
            if self.verbose and not delayed.done():
                print(f"FunctionSequence: computing item {index}", flush=True)
            delayed.result()
        return [delayed.result() for delayed in self.delayed_functions]


class CommandFunction:
    """Run a command line as a job; positional and keyword arguments become arguments.

    ``CommandFunction(["python", "train.py"])(epochs=3)`` runs ``python train.py --epochs=3``
    (as an argument list, never through a shell) and returns its standard output.
    """

    def __init__(
        self,
        command: list[str],
        verbose: bool = True,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise TypeError("CommandFunction takes the command as a list of strings")
        self.command = command
        self.verbose = verbose
        self.cwd = None if cwd is None else str(cwd)
        self.env = env

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        full = self.command + [str(a) for a in args] + [f"--{k}={v}" for k, v in kwargs.items()]
        if self.verbose:
            print(f"The following command is sent: {full}", flush=True)
        done = subprocess.run(full, cwd=self.cwd, env=self.env, capture_output=True, text=True)
        if self.verbose and done.stdout:
            print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            raise FailedJobError(
                f"{full} exited with status {done.returncode}\n{done.stderr[-5000:]}"
            )
        return done.stdout


def as_completed(
    jobs: Iterable[Job[R]], timeout: float | None = None, poll_frequency: float = 0.05
) -> Iterator[Job[R]]:
    """Yield the jobs as they finish (in the order they finish).

    Raises
    ------
    TimeoutError
        If ``timeout`` seconds pass before all jobs finished.
    """
    pending = list(jobs)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        still = []
        for job in pending:
            if job.done():
                yield job
            else:
                still.append(job)
        pending = still
        if not pending:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} job(s) still running after {timeout} s")
        time.sleep(poll_frequency)


def monitor_jobs(
    jobs: Sequence[Job[Any]],
    poll_frequency: float = 30,
    test_mode: bool = False,
    custom_logging: Callable[[float, int, dict[str, set[int]]], None] | None = None,
) -> None:
    """Print how many jobs run, failed and are done, every ``poll_frequency`` seconds, until
    every job has ended (submitit's ``monitor_jobs``).

    Parameters
    ----------
    jobs
        The jobs to watch.
    poll_frequency
        Seconds between two reports. Any value is fine: the scheduler is asked once per
        report for all Slurm jobs together.
    test_mode
        Accepted for submitit compatibility (submitit refuses less than 30 s without it).
    custom_logging
        Called with (start time, number of jobs, job indices by state) instead of the
        default report line.
    """
    del test_mode  # no minimum period to lift here
    report = custom_logging or _report_states
    if not jobs:
        print("There are no jobs to monitor")
        return
    arrays = ", ".join(sorted({str(job.job_id).split("_", 1)[0] for job in jobs}))
    print(f"Monitoring {len(jobs)} jobs from job arrays {arrays}\n")
    started = time.time()
    while True:
        by_state: dict[str, set[int]] = collections.defaultdict(set)
        for index, job in enumerate(jobs):
            by_state[job.state.upper()].add(index)
            if job.done():
                by_state["DONE"].add(index)
        failed = sorted(by_state["FAILED"])
        if len(by_state["DONE"]) == len(jobs):
            print(f"All jobs finished, jobs with indices {failed} failed", flush=True)
            break
        report(started, len(jobs), by_state)
        time.sleep(poll_frequency)
    print(f"Whole process is finished, took {int((time.time() - started) / 60)} minutes")


def _report_states(started: float, count: int, by_state: dict[str, set[int]]) -> None:
    failed = sorted(by_state["FAILED"])
    width = len(str(count))
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    print(
        f"[{now}] Launched {int((time.time() - started) / 60)} minutes ago,",
        f"{len(by_state['RUNNING']):{width}}/{count} jobs running,",
        f"{len(failed):{width}}/{count} jobs failed,",
        f"{len(by_state['DONE']) - len(failed):{width}}/{count} jobs done",
        flush=True,
    )
    if failed:
        print(f"[{now}] Failed jobs, indices {failed}", flush=True)


@contextlib.contextmanager
def environment_variables(**variables: Any) -> Iterator[None]:
    """Set environment variables (values made strings) inside the block; restore them after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update({name: str(value) for name, value in variables.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: Environment variables a job inherits that would confuse a submission made from inside it.
_JOB_ENV_PREFIXES = ("SLURM_", "SLURMD_", "SRUN_", "SBATCH_", "SUBMITIT_", "JSC_")
#: What ``torch.distributed`` (and ``TorchDistributedEnvironment``) read: a job's own rank.
_DISTRIBUTED_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
)


@contextlib.contextmanager
def clean_env(extra_names: Sequence[str] = ()) -> Iterator[None]:
    """Temporarily remove the job's scheduler and distributed-training variables (to submit a
    job from inside a job), and ``extra_names``.

    ``SLURM_CONF`` stays: it is how the Slurm commands find the cluster.
    """
    removed = {
        k: v
        for k, v in os.environ.items()
        if (k.startswith(_JOB_ENV_PREFIXES) and k != "SLURM_CONF")
        or k in _DISTRIBUTED_NAMES
        or k in extra_names
    }
    for key in removed:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(removed)
