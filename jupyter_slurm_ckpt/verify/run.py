"""One verification run: submit the call, send the planned interrupts at their moments, read
back what the job recorded (:class:`Verification`).
"""

from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import TimeoutError as FuturesTimeoutError
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.budget import check_budget
from ..core.errors import FailedJobError, UncompletedJobError
from ..core.events import summarize
from ..core.executor import Executor
from ..core.files import ensure_private_folder
from ..core.helpers import DelayedSubmission
from ..core.info import JobInfo, callable_name
from ..core.job import Job
from ..core.paths import PackagePaths
from .plan import PlannedInterrupt
from .report import InterruptRecord, RunOutcome
from .workdir import folder_bytes, in_folder

_POLL_S = 0.01

_CLOCK_SKEW_S = 1.0  # a job's event times come from its node's clock


@dataclass
class _Sent:
    """An interrupt the verifier sent: which, into which run, when."""

    planned: PlannedInterrupt
    run: int
    after_s: float
    at: float
    files_bytes: int | None = None


def _progress_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("t", "event", "run")}


def _interrupt_records(
    events: list[dict[str, Any]], sent: list[_Sent], schedule: list[PlannedInterrupt]
) -> list[InterruptRecord]:
    """One record per signal the job recorded, matched with the interrupts the verifier sent."""
    observed = _observed_signals(events)
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


def _observed_signals(events: list[dict[str, Any]]) -> list[tuple[float, InterruptRecord]]:
    """(time, record) of every checkpoint signal of task 0, with what followed it: the
    checkpoint, the requeue (or its refusal), the next run, and the progress around it."""
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
        elif current is not None:
            if name == "requeued":
                requeued_at[len(observed) - 1] = t
            _follows(current, event)
    for t, record in observed:
        before = [p for p in progress.get(record.run, []) if float(p.get("t", 0.0)) <= t]
        if len(before) > 1:  # progress reported after the run's start: where it got to
            record.progress_before = _progress_fields(before[-1])
        if record.next_run is not None and progress.get(record.next_run):
            record.resumed_at = _progress_fields(progress[record.next_run][0])
    return observed


def _follows(record: InterruptRecord, event: dict[str, Any]) -> None:
    """What an event after a signal says about it: its checkpoint, requeue or refusal."""
    name = event.get("event")
    if name == "checkpoint":
        record.checkpoint_s = float(event.get("seconds", 0.0))
        if event.get("bytes") is not None:
            record.checkpoint_bytes = int(event["bytes"])
    elif name == "requeued":
        record.requeued = True
    elif name == "not_requeued":  # its last line: a traceback ends with the error
        lines = str(event.get("reason", "")).strip().splitlines()
        record.not_requeued = lines[-1].strip() if lines else "no reason recorded"


class _Overdue(Exception):
    """A verification run did not finish in time."""


class Verification:
    """The state of one ``verify_checkpoint`` call (executor, folders, the reference's
    duration), and its runs (:meth:`run`)."""

    def __init__(
        self,
        delayed: DelayedSubmission[Any],
        executor: Executor,
        intended_delay_s: float,
        timeout_s: float | None,
        verbose: bool,
    ) -> None:
        self.delayed = delayed
        self.executor = executor
        self.intended_delay_s = intended_delay_s
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
        """One line of progress, when verbose."""
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
                    sent[-1].files_bytes = folder_bytes(folder)
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
            sent[-1].files_bytes = folder_bytes(folder)  # what the last checkpoint left

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
        value, error = None, None
        try:
            value = job.result()
        except (FailedJobError, UncompletedJobError) as failure:
            error = str(failure)
        events = job.events()  # after the result: the end event follows the result file
        summary = summarize(events)
        ended_at = summary.ended_at
        if ended_at is None and job.paths.result_pickle.exists():  # its event is on its way
            ended_at = job.paths.result_pickle.stat().st_mtime
        elapsed = None
        if summary.started_at is not None and ended_at is not None:
            elapsed = ended_at - summary.started_at
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
