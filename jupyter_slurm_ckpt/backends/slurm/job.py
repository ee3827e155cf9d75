"""``SlurmJob``: a Slurm job seen from any process: its state, its actions.

States: the job folder first (a result file or a terminal event ends a job, a ``started`` event
makes it RUNNING, a ``requeued`` one REQUEUED, all without asking Slurm), then Slurm's view for
what the folder cannot tell, from a cache shared by every job of the process, refreshed in one
scheduler call for all of them, politely (``records.PollPolicy``, ``state.SlurmStates``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...core.events import append_event
from ...core.files import WriteError, atomic_write_text
from ...core.job import Job
from ...core.paths import JobKey
from . import script as slurm_script
from .commands import SchedulerError, job_facts, run_command
from .records import SlurmRecord
from .state import STATES, SlurmStates

#: How long ``_interrupt`` waits for a just-started run's worker to be ready for the signal.
INTERRUPT_READY_WAIT_S = 30.0

# Final Slurm states the core does not name: the job FAILED (Slurm's word is in the reason).
_FINAL_AS_FAILED = ("NODE_FAIL", "BOOT_FAIL", "DEADLINE", "GONE")
# What Slurm shows of a job that is back in the queue (requeued, preempted) before its next run.
_BACK_IN_QUEUE = ("PENDING", "REQUEUED", "PREEMPTED", "REQUEUE_HOLD")
# A running job Slurm has stopped for a while: shown as Slurm says.
_HELD_STATES = ("SUSPENDED", "STOPPED")

# Appending an end event happens once per job even when several threads see the end.
_end_lock = threading.Lock()


class SlurmJob(Job[Any]):
    """A job submitted to Slurm. ``SlurmJob(folder, job_id)`` re-attaches to it."""

    cluster: ClassVar[str] = "slurm"
    #: The scheduler's view of every Slurm job of this process, shared (submitit's ``watcher``).
    watcher: ClassVar[SlurmStates] = STATES

    # -- states -------------------------------------------------------------------------------

    def _epoch(self) -> tuple[int, int]:
        summary = self.summary()
        return (summary.runs, summary.requeues)

    def _live_state(self) -> str:
        try:
            record = STATES.record(self.job_id, self.info.submitted_at, self._epoch())
        except SchedulerError:
            record = STATES.cached(self.job_id) or SlurmRecord("UNKNOWN")
        return self._public_state(record)

    @classmethod
    def poll_states(cls, jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
        """States of ``jobs`` (by ``job.key``) as ``job.state`` tells them, from at most one
        scheduler call (Slurm's records are Slurm's: keyed by Slurm's id, unique per cluster).

        Jobs whose folder shows their end are not asked about; the others are asked about
        together (with every other stale Slurm job of this process), and not at all when all
        their cached records are fresh.
        """
        states: dict[JobKey, str] = {}
        live: list[SlurmJob] = []
        for job in jobs:
            assert isinstance(job, SlurmJob)
            if job._final_state is None:
                job._final_state = job._folder_state()
            if job._final_state is not None:
                states[job.key] = job._final_state
            else:
                live.append(job)
        if live:
            for job in live:
                STATES.track(job.job_id, job.info.submitted_at)
            STATES.refresh(
                [job.job_id for job in live],
                epochs={job.job_id: job._epoch() for job in live},
                only_stale=True,
            )
            for job in live:
                record = STATES.cached(job.job_id) or SlurmRecord(None)
                states[job.key] = job._public_state(record)
        return states

    @classmethod
    def held_by_backend(cls, jobs: Sequence[Job[Any]]) -> Mapping[JobKey, str]:
        """The jobs Slurm still has queued or running (one ``squeue`` for all of them, asked
        now): ``clean`` leaves them alone, whatever their folder says."""
        held = STATES.held(job.job_id for job in jobs)
        return {
            job.key: f"Slurm still has it {held[job.job_id]}" for job in jobs if job.job_id in held
        }

    def _public_state(self, record: SlurmRecord) -> str:
        """Our state: the job folder's word (the job writes it at once), Slurm's for what the
        folder cannot know (not started yet, a run that ended without a word, the end)."""
        state = record.state
        if record.final:
            return self._ended(record)
        last = self._last_lifecycle()
        if last == "requeued":
            return "REQUEUED"  # checkpointed; Slurm takes it back to the queue
        if last == "started":
            # Slurm's answer counts only if it came after this run started (clocks of the
            # node and this host may differ by a little: a second of slack).
            since_start = record.answered - self._last_start_time() > 1.0
            if since_start and state in _BACK_IN_QUEUE:
                return "REQUEUED"  # requeued by Slurm, the run ended without a word
            if since_start and state in _HELD_STATES:
                return str(state)
            return "RUNNING"
        if state in (None, "PREEMPTED"):
            return "PENDING"  # submitted, not in the database yet (or preempted before start)
        return state

    @property
    def scheduler_problem(self) -> str | None:
        """'Slurm cannot be reached (...)' while the last scheduler call of this process failed."""
        error = STATES.last_error
        if error is None:
            return None
        return f"Slurm cannot be reached ({error}); states come from the job folder meanwhile"

    @property
    def pending_reason(self) -> str | None:
        """Slurm's reason why the job is PENDING (Priority, Resources, BeginTime...), else None."""
        if self.state != "PENDING":  # also refreshes Slurm's record of the job when stale
            return None
        record = STATES.cached(self.job_id)
        if record is None or record.state != "PENDING" or record.reason in ("", "None"):
            return None
        return record.reason

    def _ended(self, record: SlurmRecord) -> str:
        """Slurm says the job is over: the folder's state if it has one, else record Slurm's."""
        self._events.read()
        folder = self._folder_state(processes_gone=True)
        if folder is not None:
            return folder
        state = str(record.state)
        if state in _FINAL_AS_FAILED or state == "COMPLETED":  # COMPLETED: yet no result
            state = "FAILED"
        if self.read_only:  # the end is recorded by the user's processes, not by a view
            return state
        # A full disk leaves the record to a later look: reading a state never fails for it.
        with _end_lock, contextlib.suppress(WriteError):
            summary = self.summary()
            if summary.terminal is None:
                reason = self._end_reason(record)
                if state == "CANCELLED":
                    append_event(self.paths.events, "cancelled", by="slurm", reason=reason)
                else:
                    reason = summary.not_requeued_reason or reason
                    append_event(self.paths.events, "failed", state=state, reason=reason)
        return self._folder_state(processes_gone=True) or state

    def _end_reason(self, record: SlurmRecord) -> str:
        """'Slurm reports FAILED (exit code 3:0), reason NonZeroExitCode'."""
        if record.state == "GONE":
            return record.reason
        if not record.exit_code:  # squeue does not tell it: asked once, at the end
            record.exit_code = (job_facts(self.job_id) or {}).get("ExitCode", "")
        words = f"Slurm reports {record.state}"
        if record.exit_code and record.exit_code != "0:0":
            words += f" (exit code {record.exit_code})"
        if record.reason and record.reason != "None":
            words += f", reason {record.reason}"
        return words

    @property
    def restart_count(self) -> int:
        """How many times the job was requeued: Slurm's count, or our events' if higher."""
        ours = self.summary().restart_count
        finished = self.done()  # refreshes Slurm's record of the job when it is stale
        record = STATES.cached(self.job_id)
        slurm = None if record is None else record.restarts
        if slurm is None and not finished:  # squeue does not tell: scontrol, once a state
            slurm = STATES.restarts(self.job_id)
        return max(ours, slurm or 0)

    # -- actions ------------------------------------------------------------------------------

    def _cancel(self) -> None:
        STATES.expire(self.job_id)  # a user action: Slurm's view is asked for at the next look
        done = run_command(["scancel", self.job_id])
        # A job that ended meanwhile is fine ("already completing", "Invalid job id").
        if done.returncode != 0 and not any(
            text in done.stderr for text in ("already", "Invalid job id")
        ):
            raise SchedulerError(f"scancel {self.job_id} failed: {done.stderr.strip()}")

    def _send_interrupt(self, reason: str) -> None:
        """Write the reason, then USR2 to the job's worker (``scancel --signal``)."""
        deadline = time.monotonic() + INTERRUPT_READY_WAIT_S
        # Before its "started" event a task ignores USR2 (see ``script``): every task of
        # the run must have started, or its signal would be lost.
        while not self._all_tasks_started():
            if time.monotonic() >= deadline:
                raise RuntimeError(f"job {self.job_id}: its worker has not started yet")
            time.sleep(0.05)
        request = json.dumps({"reason": reason, "by": "user", "t": time.time()})
        atomic_write_text(self.paths.signal_request, request)
        scope = slurm_script.interrupt_scope(self.info.parameters, self.info.num_tasks)
        STATES.expire(self.job_id)
        try:
            done = run_command(["scancel", "--signal=USR2", *scope, self.job_id])
            if done.returncode != 0:
                raise SchedulerError(
                    f"scancel --signal=USR2 {self.job_id}: {done.stderr.strip()}"
                )
        except SchedulerError:
            # No signal went out: the reason must not be read for the next, real one.
            with contextlib.suppress(OSError):
                if self.paths.signal_request.read_text() == request:
                    self.paths.signal_request.unlink()
            raise

    def _last_lifecycle(self) -> str | None:
        for record in reversed(self._events.read()):
            if record["event"] in ("started", "requeued") and record.get("task", 0) == 0:
                return str(record["event"])
        return None

    def _last_start_time(self) -> float:
        """When the current run's task 0 started (0 before any run)."""
        for record in reversed(self._events.read()):
            if record["event"] == "started" and record.get("task", 0) == 0:
                return float(record["t"])
        return 0.0

    def _all_tasks_started(self) -> bool:
        """Whether every task of the current run has recorded its start."""
        if self._last_lifecycle() != "started":
            return False
        events = self._events.read()
        run = next(e["run"] for e in reversed(events) if e["event"] == "started")
        tasks = {e.get("task", 0) for e in events if e["event"] == "started" and e["run"] == run}
        return len(tasks) >= self.info.num_tasks
