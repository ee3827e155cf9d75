"""Resubmission: an ended job continued from its last checkpoint as a new job, once.

``job.resubmit()`` (the widget's and the sidebar's *Resubmit*) may be asked twice: a double
click, a kernel and the Jupyter server at once. The first call submits; every later one, in
any process, gets the job the first one made, which the old job's ``resubmitted`` event names.
The calls take turns under an exclusive lock on the old job's events file (``flock``: it
belongs to the open file, and a process that dies releases it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import registry
from .errors import UncompletedJobError
from .events import append_event, resubmitted_as
from .files import exclusive_lock
from .runs import results_of_last_run

if TYPE_CHECKING:
    from .job import Job


@dataclass(frozen=True)
class Resubmission:
    """The job that continues an ended one, and whether this call submitted it (False: an
    earlier call, maybe of another process, had)."""

    job: Job[Any]
    created: bool


def resubmit_once(job: Job[Any]) -> Resubmission:
    """Continue ``job`` from its last checkpoint as a new job, unless that was done already.

    Raises
    ------
    UncompletedJobError
        If the job has not ended, or has a result (it completed, or failed with an error of
        its own: running it again from the same checkpoint would fail the same way).
    """
    with exclusive_lock(job.paths.events):
        earlier = resubmitted_as(job.events())
        if earlier is not None:
            return Resubmission(type(job)(job.info.folder, earlier), created=False)
        check_resubmittable(job)
        executor = registry.executor_class(job.info.cluster).for_job(job.info)
        again: Job[Any] = executor.resubmit_from(job)
        append_event(job.paths.events, "resubmitted", job_id=again.job_id)
    return Resubmission(again, created=True)


def check_resubmittable(job: Job[Any]) -> None:
    """Refuse, with the reason, a job that is not over or that has its result."""
    state = job.state
    if not job.done():
        raise UncompletedJobError(
            f"job {job.job_id} is {state}: only a job that ended can be resubmitted"
        )
    if state in ("COMPLETED", "DONE"):
        raise UncompletedJobError(f"job {job.job_id} completed: nothing is left to continue")
    # A result of a run that was requeued (a task completed, another was checkpointed) is
    # not the job's: only its last run's tell that it failed on its own.
    with_result = results_of_last_run(job.paths, job.events(), job.num_tasks)
    if with_result:
        raise UncompletedJobError(
            f"job {job.job_id} ended {state} with an error of its own (task {with_result[0]}'s "
            "result holds it: job.result() raises it with the traceback). Resubmitting would "
            "run the same code from the same checkpoint and fail the same way: fix the cause, "
            "then submit anew"
        )
