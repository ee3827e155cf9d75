"""One shared watcher thread per process: it polls every watched job and hands out statuses.

Views subscribe with :func:`watch` (a list of jobs and a callback). Each tick the thread reads
every watched job once, asks each backend for the states of all its jobs in one call when the
backend offers it, and calls each subscription's callback with fresh :class:`JobStatus`
snapshots. It polls every ``min_interval_s`` while something changes and backs off to
``max_interval_s`` when nothing does; it ends when every watched job has finished and starts
again when a new job is watched.

Callbacks run in the watcher thread: they must only set state (widget traits), never print,
display or write to an Output widget. This module imports neither IPython nor ipywidgets.

States come from each backend's ``Job.poll_states`` (declared on ``Job``), called once a tick
for all the watched jobs of that backend: Slurm answers them from one scheduler call. Jobs
missing from its answer, or all of them if it raises, are read one by one with ``job.state``.
States are keyed by each job's folder and id (``Job.key``): two folders both have an ``L1``.
A tick only reads: a job's snapshot never waits for its result (``status``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..core.job import Job
from ..core.states import poll_all
from .status import JobStatus, collect_status, snapshot_inputs, with_clock

StatusCallback = Callable[[list[JobStatus]], None]

MIN_INTERVAL_S = 0.2
#: The folder is read at least this often: what a job writes shows within a second. (Reading
#: the folder is cheap; the scheduler is asked far less often: Slurm's ``PollPolicy``.)
MAX_INTERVAL_S = 1.0
#: A finished job is read until its terminal event lands (written just after its result file).
FINAL_GRACE_S = 3.0


def next_interval(current: float, changed: bool, low: float, high: float) -> float:
    """The back-off: poll fast after a change, twice as slowly after each quiet tick."""
    return low if changed else min(current * 2.0, high)


@dataclass(eq=False)
class Subscription:
    """A view's interest in some jobs; :meth:`cancel` ends it."""

    jobs: list[Job[Any]]
    callback: StatusCallback
    details: bool
    watcher: Watcher
    active: bool = True
    #: The exception that made the watcher drop this subscription, if any.
    error: BaseException | None = None

    def cancel(self) -> None:
        """Stop calling the callback."""
        self.watcher.unwatch(self)


@dataclass(eq=False)
class _Tracked:
    job: Job[Any]
    last: JobStatus | None = None
    done_since: float | None = None
    finished: bool = False
    subscribers: int = 0
    inputs: tuple[Any, ...] | None = None  # what ``last`` was made of (``snapshot_inputs``)


class Watcher:
    """The poller shared by every view of this process (see the module docstring).

    Parameters
    ----------
    min_interval_s, max_interval_s
        Poll period right after a change, and the slowest period it backs off to.
    final_grace_s
        How long a finished job is still read while its terminal event is missing.
    """

    def __init__(
        self,
        min_interval_s: float = MIN_INTERVAL_S,
        max_interval_s: float = MAX_INTERVAL_S,
        final_grace_s: float = FINAL_GRACE_S,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.final_grace_s = final_grace_s
        self.ticks = 0
        #: The last waits between ticks (the back-off at work), most recent last.
        self.waits: deque[float] = deque(maxlen=64)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._subscriptions: list[Subscription] = []
        self._tracked: dict[int, _Tracked] = {}  # by id(job): a job object is polled once a tick
        self._thread: threading.Thread | None = None

    # -- subscribing ------------------------------------------------------------------------------

    def watch(
        self, jobs: Iterable[Job[Any]], callback: StatusCallback, details: bool = True
    ) -> Subscription:
        """Call ``callback(statuses)`` from the watcher thread each tick until all ``jobs`` end.

        Parameters
        ----------
        jobs
            The jobs of one view (one job, or the elements of an array).
        callback
            Receives one :class:`JobStatus` per job, in order. It must only set state.
        details
            Read the timeline and log tails too (a compact table does not need them).
        """
        subscription = Subscription(list(jobs), callback, details, self)
        if not subscription.jobs:
            raise ValueError("watch() needs at least one job")
        with self._lock:
            self._subscriptions.append(subscription)
            for job in subscription.jobs:
                tracked = self._tracked.setdefault(id(job), _Tracked(job))
                tracked.subscribers += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jupyter_slurm_ckpt-watcher", daemon=True
                )
                self._thread.start()
        self._wake.set()
        return subscription

    def unwatch(self, subscription: Subscription) -> None:
        """End a subscription (nothing happens if it already ended)."""
        with self._lock:
            self._drop(subscription)

    def poke(self) -> None:
        """Poll now and fast again (after an action changed a job)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the watcher thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the thread has stopped (all watched jobs ended); True if it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return True
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
            if thread.is_alive():
                return False

    # -- the thread -------------------------------------------------------------------------------

    def _drop(self, subscription: Subscription) -> None:
        """Remove a subscription; the caller holds the lock."""
        if not subscription.active:
            return
        subscription.active = False
        self._subscriptions.remove(subscription)
        for job in subscription.jobs:
            tracked = self._tracked.get(id(job))
            if tracked is not None:
                tracked.subscribers -= 1
                if tracked.subscribers <= 0:
                    del self._tracked[id(job)]

    def _run(self) -> None:
        interval = self.min_interval_s
        while True:
            with self._lock:
                subscriptions = list(self._subscriptions)
                if not subscriptions:
                    self._thread = None  # a later watch() starts a new thread
                    return
                tracked = dict(self._tracked)
            changed = self._tick(subscriptions, tracked)
            self.ticks += 1
            interval = next_interval(interval, changed, self.min_interval_s, self.max_interval_s)
            self.waits.append(interval)
            if self._wake.wait(interval):
                interval = self.min_interval_s
            self._wake.clear()

    def _tick(self, subscriptions: list[Subscription], tracked: dict[int, _Tracked]) -> bool:
        """Read every unfinished job once, then feed every subscription; True if any changed."""
        detailed = {id(job) for sub in subscriptions if sub.details for job in sub.jobs}
        pending = [item for item in tracked.values() if not item.finished]
        states = poll_states([item.job for item in pending])
        now = time.time()
        changed = False
        for item in pending:
            status = self._read(item, states.get(item.job.key), id(item.job) in detailed, now)
            changed = changed or status != item.last
            item.last = status
            if status.done:
                item.done_since = item.done_since or now
                item.finished = status.terminal_seen or now - item.done_since >= self.final_grace_s
        for subscription in subscriptions:
            items = [tracked.get(id(job)) for job in subscription.jobs]
            statuses = [item.last for item in items if item is not None and item.last is not None]
            if len(statuses) != len(items):
                continue
            error: BaseException | None = None
            try:
                subscription.callback(statuses)
            except Exception as exc:  # a broken view must not stop the others; kept for debugging
                error = exc
            if error is not None or all(item.finished for item in items if item is not None):
                with self._lock:
                    subscription.error = error
                    self._drop(subscription)
        return changed

    def _read(self, item: _Tracked, state: str | None, details: bool, now: float) -> JobStatus:
        try:
            inputs = None if state is None else (details, snapshot_inputs(item.job, state))
            if inputs is not None and inputs[1] is not None and inputs == item.inputs:
                assert item.last is not None
                return with_clock(item.last, now)  # nothing changed but the clock
            status = collect_status(item.job, state, details=details, previous=item.last, now=now)
            item.inputs = inputs if status.problem is None else None
            return status
        except Exception as error:  # e.g. the job folder was deleted: say so in the view
            item.inputs = None
            problem = f"{type(error).__name__}: {error}"
            if item.last is not None:
                return replace(item.last, problem=problem)
            job = item.job
            return JobStatus(
                job.job_id, "?", job.cluster or "?", "UNKNOWN", folder=str(job.paths.folder),
                problem=problem,
            )


#: The batched state poll (one ``poll_states`` call per backend), as the views know it.
poll_states = poll_all


_default: Watcher | None = None
_default_lock = threading.Lock()


def get_watcher() -> Watcher:
    """The process's shared watcher."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Watcher()
        return _default


def watch(jobs: Iterable[Job[Any]], callback: StatusCallback, details: bool = True) -> Subscription:
    """Subscribe to the shared watcher (see :meth:`Watcher.watch`)."""
    return get_watcher().watch(jobs, callback, details)
