"""The base executor owns the flow; backends fill declared hooks, which pass data as values.

One fake here: tests subclass a backend to hold a submission inside one of its hooks (a
barrier), which makes two submissions interleave the same way every time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.errors import FailedSubmissionError
from jupyter_slurm_ckpt.core.executor import Executor, Reservation

from .conftest import wait_running_run
from .jobs_for_tests import wait_file


class _Interleaved(submitit.LocalExecutor):
    """Each submission waits, once launched, until the other one is launched too."""

    barrier = threading.Barrier(2)

    def _make_job(self, *args: Any) -> Any:
        self.barrier.wait(timeout=60)
        return super()._make_job(*args)


def test_two_threads_submitting_through_one_executor_keep_their_own_launch(folder: Path) -> None:
    # What _launch returns (here the controller process started for the job) reaches that
    # job, not the other thread's: it was an attribute of the executor, overwritten meanwhile.
    executor = _Interleaved(folder)
    executor.update_parameters(setup=["true"])  # the controller is started here, not forked
    jobs: list[submitit.Job[Any]] = []
    threads = [threading.Thread(target=lambda: jobs.append(executor.submit(len, "abc")))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(jobs) == 2
    for job in jobs:
        assert isinstance(job, submitit.LocalJob) and job._launcher is not None
        assert job.job_id in job._launcher.args
        assert job.result(timeout=120) == 3


class _Refused(submitit.LocalExecutor):
    """A backend whose launch fails: the reservation comes back to it."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.withdrawn: list[Reservation] = []

    def _launch(self, reservation: Reservation) -> None:
        raise OSError("no process can be started")

    def _withdraw(self, reservation: Reservation) -> None:
        self.withdrawn.append(reservation)


def test_a_failed_launch_withdraws_the_reservation_and_leaves_no_file(folder: Path) -> None:
    executor = _Refused(folder)
    with pytest.raises(FailedSubmissionError, match="no process can be started"):
        executor.map_array(len, ["a", "b"])
    assert [(r.job_ids, r.array_size) for r in executor.withdrawn] == [(["L1_0", "L1_1"], 2)]
    assert sorted(p.name for p in folder.iterdir()) == [".local_job_counter"]


def test_every_backend_hook_is_declared_on_the_base_classes() -> None:
    for hook in ("_reserve_job_ids", "_write_job_files", "_launch", "_withdraw", "_make_job",
                 "_job_info", "_num_tasks", "_own_parameter", "_check_parameters", "_from_info"):
        assert getattr(Executor, hook).__doc__, hook
    for hook in ("_live_state", "_live_final", "poll_states", "_cancel", "_send_interrupt"):
        assert getattr(submitit.Job, hook).__doc__, hook
    for hook in ("pending_reason", "scheduler_problem"):
        assert getattr(submitit.Job, hook).__doc__, hook
    for backend in (submitit.LocalExecutor, submitit.DebugExecutor, submitit.SlurmExecutor):
        assert "_submit_submissions" not in vars(backend)  # the base owns the flow


def test_cancel_says_whether_it_cancelled(local: submitit.LocalExecutor, tmp_path: Path) -> None:
    running = local.submit(wait_file, str(tmp_path / "never"))
    wait_running_run(running, 0)
    assert running.cancel() is True
    wait_for(lambda: running.done(), "the cancelled job to end")
    assert running.cancel() is False  # ended already
    finished = local.submit(len, "ab")
    assert finished.result(timeout=60) == 2
    assert finished.cancel() is False
    debug = submitit.DebugExecutor(local.folder).submit(len, "abc")
    assert debug.cancel() is True and debug.state == "CANCELLED"
    assert debug.cancel() is False


def test_a_backend_without_a_queue_has_no_pending_reason(local: submitit.LocalExecutor) -> None:
    job = local.submit(len, "ab")
    assert job.pending_reason is None
    assert submitit.LocalJob.poll_states([job]) == {job.key: job.state}
    job.result(timeout=60)
