"""What Slurm says about one job, parsed from ``sacct``/``squeue``/``scontrol``, and how long it
stays fresh (:class:`PollPolicy`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

#: Slurm states after which the job never runs again.
SLURM_FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",  # only when it lasts: see ``PREEMPTED_FINAL_AFTER_S``
        "GONE",  # ours: neither sacct nor squeue knows the job (any more)
    }
)
#: A PREEMPTED job is requeued within seconds (PreemptMode=REQUEUE); one that stays PREEMPTED
#: this long was cancelled by its preemption (PreemptMode=CANCEL).
PREEMPTED_FINAL_AFTER_S = 60.0


@dataclass
class PollPolicy:
    """How often the scheduler is asked about a job, by what the folder cannot tell.

    Attributes
    ----------
    first_s
        A job just submitted: its first state and pending reason.
    pending_s
        A job that has not started (or is back in the queue): its state and Slurm's reason.
    liveness_s
        A job the folder shows running: is it still alive? A job killed without a word is
        shown ended within this long.
    """

    first_s: float = 2.0
    pending_s: float = 10.0
    liveness_s: float = 60.0

    def ttl(self, running: bool) -> float:
        """How long a record stays fresh: a running job's longer than a pending one's."""
        return self.liveness_s if running else self.pending_s


_ARRAY_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


@dataclass
class SlurmRecord:
    """One job as the scheduler reported it last.

    Attributes
    ----------
    state
        Slurm's state, first word only (``CANCELLED by 0`` -> ``CANCELLED``); None when Slurm
        had no record of the job (yet).
    reason
        Slurm's Reason (why a job is PENDING, or why it ended).
    source
        The command it came from: ``sacct``, ``squeue`` or ``scontrol``.
    restarts
        How many times Slurm requeued the job, when the command tells (sacct -D, scontrol).
    """

    state: str | None
    reason: str = ""
    node: str = ""
    exit_code: str = ""
    source: str = ""
    restarts: int | None = None
    fetched: float = 0.0  # time.monotonic() of the answer (or of the last sign of life)
    answered: float = 0.0  # time.time() of Slurm's answer (0: Slurm has not answered yet)
    since: float = 0.0  # when this state was first seen
    ttl: float = PollPolicy.first_s
    epoch: tuple[int, int] = (0, 0)  # the job folder's (runs, requeues) when last seen

    @property
    def final(self) -> bool:
        """Whether Slurm says the job will not run again."""
        if self.state == "PREEMPTED":
            return time.monotonic() - self.since >= PREEMPTED_FINAL_AFTER_S
        return self.state in SLURM_FINAL_STATES


def root_id(job_id: str) -> str:
    """The id Slurm selects a job by: an array element's array id, else the id itself."""
    return job_id.partition("_")[0]


def expand_array_range(job_id: str) -> list[str]:
    """``12_[0-3,7%2]`` (a pending part of an array) -> ``12_0 .. 12_3, 12_7``; else [id]."""
    match = _ARRAY_RANGE.match(job_id)
    if not match:
        return [job_id]
    head, spec = match.groups()
    spec = spec.split("%")[0]
    ids: list[str] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            continue
        step_high = int(high) if high else int(low)
        ids.extend(f"{head}_{index}" for index in range(int(low), step_high + 1))
    return ids


def normalize_state(text: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; ``COMPLETED+`` -> ``COMPLETED``."""
    return text.split()[0].rstrip("+") if text.strip() else ""


def parse_sacct(text: str) -> dict[str, SlurmRecord]:
    """Parse ``sacct --parsable2 -n -X -D -o JobID,State,Reason,NodeList,ExitCode``.

    With ``-D`` every run of a requeued job is one row, oldest first: the last row is the
    current run, and the row count minus one is Slurm's restart count. A pending part of an
    array is one row (``12_[3-9%2]``), expanded here; it never overrides an element's own rows.
    """
    rows: dict[str, list[SlurmRecord]] = {}
    ranged: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 5 or not fields[0]:
            continue
        job_id, state, reason, node, exit_code = fields[:5]
        record = SlurmRecord(
            normalize_state(state), reason, "" if node == "None assigned" else node, exit_code,
            "sacct",
        )
        ids = expand_array_range(job_id)
        if len(ids) == 1 and ids[0] == job_id:
            rows.setdefault(job_id, []).append(record)
        else:
            for element in ids:
                ranged[element] = record
    records = {element: record for element, record in ranged.items() if element not in rows}
    for job_id, runs in rows.items():
        current = runs[-1]
        current.restarts = len(runs) - 1
        records[job_id] = current
    return records


def parse_squeue(text: str) -> dict[str, SlurmRecord]:
    """Parse ``squeue -h -r -t all -o '%i|%T|%r|%N'`` (one line per array element)."""
    records = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 4 or not fields[0]:
            continue
        job_id, state, reason, node = fields[:4]
        for element in expand_array_range(job_id):
            records[element] = SlurmRecord(normalize_state(state), reason, node, "", "squeue")
    return records
