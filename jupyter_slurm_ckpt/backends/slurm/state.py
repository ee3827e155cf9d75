"""What Slurm says about jobs: one scheduler call for many jobs, parsed, cached, backed off.

``sacct`` is asked first (it knows finished jobs for good). Jobs it reports PENDING, or does not
list yet, are asked about with ``squeue`` in the same refresh: slurmdbd lags slurmctld and keeps
a pending job's Reason stale. When ``sacct`` answers that accounting storage is disabled, this
process switches to ``squeue`` alone (live jobs, and finished ones for ``MinJobAge``) for good;
one job's own ``squeue`` (``commands.job_facts``) gives the restart count and exit code that the
shared listing lacks, once per job.
A refresh is therefore one command (two while some jobs are pending, in accounting mode),
whatever the number of jobs.

Every job id this process asked about is *tracked* until Slurm reports it finished. A refresh
asks about every tracked job whose cached record is stale, in one command: a loop over many
``job.state`` calls (``as_completed``) and the widget's watcher both cost one call a tick.

Politeness: almost everything a view shows comes from the job folder, which the job writes
itself (started, signals, checkpoints, its end). Slurm is asked only what the folder cannot say
(:class:`PollPolicy`): the state and reason of a job that has not started, every
``pending_s``; whether a running job is still alive (killed without a word: OOM, ``scancel -s
KILL``, a lost node), every ``liveness_s``; and right after a user action (:meth:`expire`).
A new run in the folder counts as a sign of life, so it costs no call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from .commands import SchedulerError, job_facts, known_config, run_command
from .records import PollPolicy, SlurmRecord, parse_sacct, parse_squeue, root_id

#: Slurm states in which a job runs (or winds down): checked at the liveness pace.
_RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING"})
#: A job unknown to Slurm this soon after its submission is PENDING (the database lags, and a
#: re-attached job's record may be on its way); later, it is GONE.
ACCOUNTING_LAG_S = 5.0

_DISABLED = "accounting storage is disabled"
_SACCT_FIELDS = "JobID,State,Reason,NodeList,ExitCode"
_SQUEUE_FORMAT = "%i|%T|%r|%N"
#: Job ids per ``squeue -j`` (a command line of thousands of ids stays well under its limit).
_SQUEUE_BATCH = 500


class SlurmStates:
    """The process-wide cache of Slurm's view of our jobs (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, SlurmRecord] = {}
        self._tracked: dict[str, float] = {}  # job id -> submitted_at (unix time)
        self._background: threading.Thread | None = None
        self._background_epochs: dict[str, tuple[int, int] | None] = {}
        #: None until the first sacct call tells whether accounting storage exists.
        self.accounting: bool | None = None
        #: The error of the last refresh, if it failed (the records are kept): while it is
        #: set, views say that Slurm cannot be reached.
        self.last_error: SchedulerError | None = None
        #: How often jobs are asked about (``%config SlurmMagics.poll_liveness_s`` etc.).
        self.policy = PollPolicy()

    # -- the cache --------------------------------------------------------------------------

    def track(self, job_id: str, submitted_at: float) -> None:
        """Watch ``job_id`` (until Slurm reports it finished)."""
        with self._lock:
            self._tracked.setdefault(job_id, submitted_at)

    def submitted(self, job_ids: Iterable[str]) -> None:
        """Jobs just submitted (and released): PENDING until Slurm is next asked."""
        now, wall = time.monotonic(), time.time()
        with self._lock:
            for job_id in job_ids:
                self._tracked.setdefault(job_id, wall)
                self._records[job_id] = SlurmRecord(
                    None, source="sbatch", fetched=now, since=now, ttl=self.policy.first_s
                )

    def expire(self, job_id: str) -> None:
        """Ask Slurm about the job at the next look (after a user action changed it)."""
        with self._lock:
            record = self._records.get(job_id)
            if record is not None:
                record.fetched = 0.0

    def folder_says(self, job_id: str, epoch: tuple[int, int]) -> None:
        """The job folder shows ``epoch`` (runs, requeues): a new run, or a requeue, is news
        the job wrote itself. It resets the record's clock (a sign of life) instead of
        costing a scheduler call: a running job is next asked ``liveness_s`` from now."""
        with self._lock:
            record = self._records.get(job_id)
            if record is None or record.epoch == epoch:
                return
            record.epoch = epoch
            record.fetched = time.monotonic()
            runs, requeues = epoch
            record.ttl = self.policy.ttl(running=runs > requeues)

    def clear(self) -> None:
        """Forget every cached record (submitit's ``SlurmJob.watcher.clear()``): the next look
        at a job asks Slurm."""
        with self._lock:
            self._records.clear()

    def cached(self, job_id: str) -> SlurmRecord | None:
        """The last record of a job, without asking Slurm."""
        with self._lock:
            return self._records.get(job_id)

    def is_stale(self, job_id: str, epoch: tuple[int, int] | None = None) -> bool:
        """Whether the record is older than its time-to-live (see :class:`PollPolicy`)."""
        if epoch is not None:
            self.folder_says(job_id, epoch)
        record = self.cached(job_id)
        if record is None:
            return True
        return time.monotonic() - record.fetched >= record.ttl

    def record(
        self, job_id: str, submitted_at: float, epoch: tuple[int, int] | None = None
    ) -> SlurmRecord:
        """The job's record; a stale one is refreshed (with every other stale tracked job).

        Only a job without any record waits for Slurm; a stale record is returned as it is
        while a background thread asks Slurm, so that ``job.done()`` in a wait loop never
        blocks on a scheduler command and sees the result file as soon as it lands.
        """
        self.track(job_id, submitted_at)
        if self.is_stale(job_id, epoch):
            if self.cached(job_id) is None:
                self.refresh([job_id], epochs={job_id: epoch})
            else:
                self._refresh_in_background(job_id, epoch)
        record = self.cached(job_id)
        assert record is not None
        return record

    def _refresh_in_background(self, job_id: str, epoch: tuple[int, int] | None) -> None:
        with self._lock:
            self._background_epochs[job_id] = epoch
            if self._background is not None:
                return  # the running refresh takes it (or the next call starts one)
            self._background = threading.Thread(
                target=self._run_background, name="jupyter_slurm_ckpt-slurm-states", daemon=True
            )
            self._background.start()

    def _run_background(self) -> None:
        try:
            while True:
                with self._lock:
                    epochs, self._background_epochs = self._background_epochs, {}
                    if not epochs:
                        self._background = None
                        return
                try:
                    self.refresh(list(epochs), epochs=epochs)
                except SchedulerError:
                    return  # kept in last_error; the next look tries again
        finally:
            with self._lock:
                if self._background is threading.current_thread():
                    self._background = None

    # -- asking Slurm -----------------------------------------------------------------------

    def refresh(
        self,
        job_ids: Iterable[str],
        epochs: Mapping[str, tuple[int, int] | None] | None = None,
        only_stale: bool = False,
    ) -> None:
        """Ask Slurm about ``job_ids`` and every stale tracked job, in one command.

        Parameters
        ----------
        job_ids
            Jobs that must be asked about (tracked from now on).
        epochs
            The folder epoch of jobs whose folder was read just now (a new run invalidates).
        only_stale
            Skip the command when none of ``job_ids`` is stale (the watcher's ticks).

        Raises
        ------
        SchedulerError
            When the scheduler command fails (the cache keeps its last records).
        """
        epochs = dict(epochs or {})
        wanted = list(dict.fromkeys(job_ids))
        with self._lock:
            for job_id in wanted:
                self._tracked.setdefault(job_id, time.time())
            if only_stale and not any(self.is_stale(j, epochs.get(j)) for j in wanted):
                return
            ask = set(wanted) | {j for j in self._tracked if self.is_stale(j)}
            submitted = {job_id: self._tracked.get(job_id, 0.0) for job_id in ask}
        if not ask:
            return
        try:
            answers = self._query(sorted(ask), submitted)
        except SchedulerError as error:
            self.last_error = error
            self._retry_later(ask)
            raise
        self.last_error = None
        now = time.monotonic()
        with self._lock:
            for job_id in ask:
                self._store(job_id, answers.get(job_id), now, epochs.get(job_id))

    def _retry_later(self, job_ids: Iterable[str]) -> None:
        """Slurm did not answer: the records are kept, and asked for again a pending period
        later (not at every look, which would hammer a controller that is down)."""
        now = time.monotonic()
        with self._lock:
            for job_id in job_ids:
                record = self._records.setdefault(job_id, SlurmRecord(None, since=now))
                record.fetched = now
                record.ttl = self.policy.pending_s

    def _store(
        self,
        job_id: str,
        fresh: SlurmRecord | None,
        now: float,
        epoch: tuple[int, int] | None,
    ) -> None:
        old = self._records.get(job_id)
        if fresh is None:
            fresh = SlurmRecord(None, source="sacct" if self.accounting else "squeue")
        fresh.fetched = now
        fresh.answered = time.time()
        if old is not None and old.state == fresh.state:
            fresh.since = old.since
            if fresh.restarts is None:
                fresh.restarts = old.restarts
        else:
            fresh.since = now
        fresh.epoch = epoch or (old.epoch if old is not None else (0, 0))
        running = fresh.state in _RUNNING_STATES or fresh.epoch[0] > fresh.epoch[1]
        fresh.ttl = self.policy.ttl(running)
        self._records[job_id] = fresh
        if fresh.final:
            self._tracked.pop(job_id, None)

    def _query(self, job_ids: list[str], submitted: Mapping[str, float]) -> dict[str, SlurmRecord]:
        now = time.time()
        if self.accounting is None:
            self.accounting = accounting_configured()
        # Jobs submitted just now may be missing from both answers: PENDING (no record) then.
        old = [j for j in job_ids if now - submitted.get(j, 0.0) > ACCOUNTING_LAG_S]
        records = self._sacct(job_ids) if self.accounting is not False else None
        # Only Slurm's full memory (sacct, or squeue where there is no accounting) can say that
        # a job is gone: with slurmdbd down, squeue alone forgets finished jobs.
        complete = records is not None or self.accounting is False
        if records is None:
            records = self._squeue(job_ids)
        else:
            # The database lags slurmctld by up to seconds, and keeps the Reason a PENDING job
            # had when it was recorded (measured: "None" long after a release, where squeue
            # says BeginTime): slurmctld is asked about those jobs, in one more call.
            ask = [j for j in job_ids if j not in records or records[j].state == "PENDING"]
            if ask:
                for job_id, live in self._squeue(ask).items():
                    if job_id in records:
                        live.restarts = records[job_id].restarts
                    records[job_id] = live
        for job_id in old if complete else ():
            if job_id not in records:  # ended so long ago that squeue forgot it, or never ran
                records[job_id] = SlurmRecord("GONE", "Slurm has no record of this job")
        return records

    def _sacct(self, job_ids: list[str]) -> dict[str, SlurmRecord] | None:
        """sacct's records, or None when it cannot answer (then squeue is asked instead)."""
        roots = ",".join(dict.fromkeys(root_id(j) for j in job_ids))
        done = run_command(
            ["sacct", "--parsable2", "-n", "-X", "-D", "-j", roots, "-o", _SACCT_FIELDS]
        )
        if _DISABLED in done.stderr + done.stdout:
            self.accounting = False  # for good: this cluster has no accounting storage
            return None
        if done.returncode != 0:  # slurmdbd down, for instance: slurmctld answers this time
            self.last_error = SchedulerError(f"sacct failed: {done.stderr.strip()}")
            return None
        self.accounting = True
        return parse_sacct(done.stdout)

    def _squeue(self, job_ids: list[str]) -> dict[str, SlurmRecord]:
        roots = ",".join(dict.fromkeys(root_id(j) for j in job_ids))
        done = run_command(["squeue", "-h", "-r", "-t", "all", "-j", roots, "-o", _SQUEUE_FORMAT])
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return {}  # none of them is known any more
            raise SchedulerError(f"squeue failed: {done.stderr.strip() or done.returncode}")
        return parse_squeue(done.stdout)

    def held(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The jobs Slurm still has queued or running, asked now (not from the cache), with
        their state: ``squeue``, the controller's own view, in batches of ids.

        Raises
        ------
        SchedulerError
            When Slurm cannot be asked (then nobody can tell whether the jobs run).
        """
        wanted = set(job_ids)
        roots = sorted({root_id(job_id) for job_id in wanted})
        held: dict[str, str] = {}
        for start in range(0, len(roots), _SQUEUE_BATCH):
            for job_id, record in self._squeue(roots[start : start + _SQUEUE_BATCH]).items():
                if job_id in wanted and record.state and not record.final:
                    held[job_id] = record.state
        return held

    def restarts(self, job_id: str) -> int | None:
        """Slurm's restart count of a job (sacct's runs, else ``squeue``'s), or None."""
        record = self.cached(job_id)
        if record is not None and record.restarts is not None:
            return record.restarts
        fields = job_facts(job_id) or {}
        known = fields.get("Restarts", "").isdigit()
        with self._lock:
            if record is not None:  # asked once per state: 0 when Slurm does not know
                record.restarts = int(fields["Restarts"]) if known else 0
        return int(fields["Restarts"]) if known else None


def accounting_configured() -> bool | None:
    """Whether Slurm keeps accounting storage, as its configuration says (read at submission:
    ``scontrol show config``), without asking anything; None when not read yet (the first
    ``sacct`` finds out). Spares a process that submitted a sacct that can only say "accounting
    storage is disabled" on its first poll."""
    kind = known_config().get("AccountingStorageType", "")
    if not kind:
        return None
    return kind.strip() != "accounting_storage/none"


#: The cache shared by every Slurm job of this process.
STATES = SlurmStates()
