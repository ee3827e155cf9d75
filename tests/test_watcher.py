"""The shared watcher thread: real local jobs, real threads, no kernel needed."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from support import WAIT_S, wait_for
from test_widget_helpers import (  # the fixtures register as executor and watcher
    executor_fixture,  # noqa: F401
    watcher_fixture,  # noqa: F401
)
from test_widget_jobs import Waiter, echo

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.views.status import JobStatus
from jupyter_slurm_ckpt.views.watcher import Watcher, next_interval


class Recorder:
    """A subscription callback that keeps every batch of statuses it was given."""

    def __init__(self) -> None:
        self.batches: list[list[JobStatus]] = []
        self.threads: set[str] = set()

    def __call__(self, statuses: list[JobStatus]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(statuses)

    @property
    def last(self) -> list[JobStatus]:
        return self.batches[-1] if self.batches else []


def test_follows_a_job_to_its_end_then_stops_and_restarts(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = executor.submit(Waiter(), str(release))
    recorder = Recorder()
    watcher.watch([job], recorder)
    assert watcher.running
    wait_for(lambda: recorder.last and recorder.last[0].state == "RUNNING", "RUNNING")
    release.touch()
    assert watcher.join(WAIT_S), "the thread must stop once every watched job has ended"
    final = recorder.last[0]
    assert final.state == "COMPLETED" and final.done and final.terminal_seen
    assert final.result is not None and final.result.startswith("{'ticks': ")
    assert [row.event for row in final.timeline][-1] == "completed"
    assert recorder.threads == {"jupyter_slurm_ckpt-watcher"}

    # A new job restarts the thread.
    second = executor.submit(echo, 42)
    again = Recorder()
    watcher.watch([second], again)
    assert watcher.join(WAIT_S)
    assert again.last[0].result == "42"


class BatchedLocalJob(submitit.LocalJob):
    """A local job with the batched-poll hook the Slurm backend provides (one call per tick)."""

    calls: list[list[str]] = []
    fail = False
    _in_hook = threading.local()
    state_outside_hook: list[str] = []

    @classmethod
    def poll_states(cls, jobs: Sequence[submitit.Job[Any]]) -> Mapping[str, str]:
        cls.calls.append([job.job_id for job in jobs])
        if cls.fail:
            raise RuntimeError("scheduler unreachable")
        cls._in_hook.active = True
        try:
            return {job.key: job.state for job in jobs}
        finally:
            cls._in_hook.active = False

    def _live_state(self) -> str:
        if threading.current_thread().name.endswith("watcher") and not getattr(
            self._in_hook, "active", False
        ):
            self.state_outside_hook.append(self.job_id)
        return super()._live_state()


def test_one_batched_state_poll_per_tick(
    executor: submitit.LocalExecutor, watcher: Watcher, tmp_path: Path
) -> None:
    BatchedLocalJob.calls, BatchedLocalJob.state_outside_hook = [], []
    release = tmp_path / "release"
    submitted = executor.map_array(Waiter(), [str(release)] * 3)
    jobs = [BatchedLocalJob(executor.folder, job.job_id) for job in submitted]
    recorder = Recorder()
    watcher.watch(jobs, recorder)
    wait_for(lambda: len(BatchedLocalJob.calls) >= 3, "a few ticks")
    release.touch()
    assert watcher.join(WAIT_S)
    assert {status.state for status in recorder.last} == {"COMPLETED"}
    # Every tick asked the backend once, for all the jobs not yet finished.
    assert len(BatchedLocalJob.calls) <= watcher.ticks
    assert BatchedLocalJob.calls[0] == [job.job_id for job in jobs]
    assert all(set(call) <= {job.job_id for job in jobs} for call in BatchedLocalJob.calls)
    # ... and did not ask each job again behind the hook's back.
    assert BatchedLocalJob.state_outside_hook == []


def test_a_failing_hook_falls_back_to_each_jobs_state(
    executor: submitit.LocalExecutor, watcher: Watcher
) -> None:
    BatchedLocalJob.calls, BatchedLocalJob.fail = [], True
    try:
        job = BatchedLocalJob(executor.folder, executor.submit(echo, "x").job_id)
        recorder = Recorder()
        watcher.watch([job], recorder)
        assert watcher.join(WAIT_S)
    finally:
        BatchedLocalJob.fail = False
    assert BatchedLocalJob.calls, "the hook was tried"
    assert recorder.last[0].state == "COMPLETED"


def test_backs_off_when_nothing_changes() -> None:
    assert next_interval(0.2, changed=True, low=0.2, high=2.0) == 0.2
    intervals = [0.2]
    for _ in range(6):
        intervals.append(next_interval(intervals[-1], changed=False, low=0.2, high=2.0))
    assert intervals == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert next_interval(2.0, changed=True, low=0.2, high=2.0) == 0.2


def test_a_quiet_job_is_polled_at_the_slowest_interval(
    tmp_path: Path, watcher: Watcher
) -> None:
    # A debug job stays PENDING until its result is asked for: nothing changes, tick after tick.
    job = submitit.DebugExecutor(tmp_path / "jobs").submit(echo, 1)
    subscription = watcher.watch([job], Recorder())
    slowest = watcher.max_interval_s
    wait_for(lambda: len(watcher.waits) >= 6 and watcher.waits[-1] == slowest, "the back-off")
    assert list(watcher.waits)[:5] == [0.02, 0.04, 0.08, 0.16, 0.2]
    before = len(watcher.waits)
    watcher.poke()  # what an action does: poll fast again
    wait_for(lambda: any(w < slowest for w in list(watcher.waits)[before:]), "a fast poll")
    subscription.cancel()


def test_a_broken_callback_is_dropped_and_the_others_go_on(
    executor: submitit.LocalExecutor, watcher: Watcher
) -> None:
    job = executor.submit(echo, 7)

    def broken(statuses: list[JobStatus]) -> None:
        raise RuntimeError("view is gone")

    bad = watcher.watch([job], broken)
    good = Recorder()
    watcher.watch([job], good)
    assert watcher.join(WAIT_S)
    assert isinstance(bad.error, RuntimeError) and not bad.active
    assert good.last[0].result == "7"


def test_a_vanished_job_folder_is_reported_in_the_status(
    executor: submitit.LocalExecutor, watcher: Watcher
) -> None:
    job = executor.submit(echo, 1)
    job.wait(WAIT_S)
    job = submitit.LocalJob(executor.folder, job.job_id)  # a fresh handle: nothing cached
    job.paths.info.unlink()
    recorder = Recorder()
    subscription = watcher.watch([job], recorder)
    wait_for(lambda: recorder.last and recorder.last[0].problem, "the problem to be reported")
    assert "JobFolderError" in (recorder.last[0].problem or "")
    subscription.cancel()
    assert watcher.join(WAIT_S)


def test_importable_without_ipython_or_ipywidgets(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['ipywidgets'] = None\n"  # any import of them now fails
        "sys.modules['IPython'] = None\n"
        "import jupyter_slurm_ckpt as s\n"
        "from jupyter_slurm_ckpt.views.watcher import Watcher\n"
        f"job = s.LocalExecutor({str(tmp_path / 'jobs')!r}).submit(int, '5')\n"
        "job.wait(60)\n"
        "print(job._repr_mimebundle_()['text/plain'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "COMPLETED" in out.stdout and "result: 5" in out.stdout, out.stderr
