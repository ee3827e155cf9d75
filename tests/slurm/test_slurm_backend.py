"""The Slurm backend on the real cluster: submission, parameters, arrays, cancel, states.

Every test runs in both polling modes (CI runs this folder once without accounting storage, so
states come from squeue/scontrol, and once with slurmdbd, so they come from sacct).
"""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import slurm_fields
from slurm_jobs_for_tests import Gated, die_without_result, square_or_fail, whoami
from support import wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt import FailedJobError, FailedSubmissionError, UncompletedJobError
from jupyter_slurm_ckpt.backends.slurm.commands import COUNTER
from jupyter_slurm_ckpt.backends.slurm.state import STATES
from jupyter_slurm_ckpt.views.watcher import Watcher

pytestmark = pytest.mark.slurm

WAIT_S = 120.0


def user_jobs() -> set[str]:
    """Every job id Slurm knows about (pending, running, or recently ended)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def test_submit_passes_parameters_and_setup_and_returns_the_result(
    executor: submitit.AutoExecutor, folder: Path
) -> None:
    executor.update_parameters(
        timeout_min=2.5,
        name="param check",
        cpus_per_task=1,
        mem_gb=0.25,
        slurm_partition="low",
        slurm_setup=["echo from-setup-$((6 * 7))"],
        slurm_additional_parameters={"comment": "hello world; $(touch nope)", "mail_type": "NONE"},
    )
    job = executor.submit(whoami)
    fields = slurm_fields(job.job_id)
    assert fields["TimeLimit"] == "00:03:00"  # whole minutes, rounded up
    assert fields["Partition"] == "low" and fields["MinMemoryNode"] == "256M"
    assert fields["Requeue"] == "1"
    result = job.result(timeout=WAIT_S)
    assert result["job_id"] == job.job_id == result["slurm_job_id"]
    assert result["cluster"] == "slurm" and result["num_tasks"] == 1
    assert job.state == "COMPLETED" and job.restart_count == 0
    assert job.stdout() == "from-setup-42\n"  # setup lines are shell, as documented
    assert not (Path.cwd() / "nope").exists()
    comment = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True,
                             text=True).stdout
    assert "Comment=hello world; $(touch nope)" in comment
    assert "JobName=param check" in comment
    for path in folder.iterdir():  # private, logs included (written by slurmstepd)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Another process re-attaches from the folder alone.
    code = (
        "import sys, jupyter_slurm_ckpt as s; j = s.Job(sys.argv[1], sys.argv[2]); "
        "print(type(j).__name__, j.state, j.result()['job_id'])"
    )
    other = subprocess.run([sys.executable, "-c", code, str(folder), job.job_id],
                           capture_output=True, text=True, timeout=60)
    assert other.stdout.split() == ["SlurmJob", "COMPLETED", job.job_id], other.stderr


def test_folder_with_shell_and_slurm_characters(tmp_path: Path) -> None:
    folder = tmp_path / "a b $(touch PWNED) 'q' %x;`id`"
    executor = submitit.AutoExecutor(folder)
    script = executor.executor.sbatch_script(0)  # what --dry-run shows
    assert "exec " in script and "'" in script.splitlines()[-1]
    job = executor.submit(whoami)
    assert job.result(timeout=WAIT_S)["job_id"] == job.job_id
    assert job.paths.folder == folder and job.paths.stdout.exists()
    assert not list(tmp_path.rglob("PWNED"))


def test_bad_input_is_refused_and_nothing_is_submitted(folder: Path) -> None:
    executor = submitit.AutoExecutor(folder)
    before = user_jobs()
    for bad in (
        {"slurm_setup": ["echo ok\n#SBATCH --partition=high"]},
        {"slurm_setup": "echo a string, not a list"},
        {"slurm_additional_parameters": {"output": "/tmp/elsewhere"}},
        {"slurm_additional_parameters": {"time": "10"}},
        {"slurm_additional_parameters": {"comment": "two\nlines"}},
        {"slurm_additional_parameters": {"bad key": "x"}},
        {"slurm_partition": "low\n#SBATCH --exclusive"},
    ):
        with pytest.raises(ValueError):
            executor.update_parameters(**bad)
    with pytest.raises(FailedSubmissionError, match="cannot use"):
        submitit.AutoExecutor(folder / "back\\slash").submit(whoami)
    executor.update_parameters(slurm_partition="jsc_no_such_partition")
    with pytest.raises(FailedSubmissionError) as caught:
        executor.submit(whoami)
    assert "sbatch: error" in str(caught.value) and "partition" in str(caught.value)
    assert list(folder.rglob("*_job.json")) == []
    assert user_jobs() == before


def test_array_of_20_with_one_failing_task(executor: submitit.AutoExecutor) -> None:
    executor.update_parameters(slurm_array_parallelism=20)
    sbatch_before = COUNTER.by_command.get("sbatch", 0)
    jobs = executor.map_array(square_or_fail, range(20), [7] * 20)
    assert COUNTER.by_command.get("sbatch", 0) == sbatch_before + 1  # one sbatch --array
    array_id = jobs[0].job_id.split("_")[0]
    assert [job.job_id for job in jobs] == [f"{array_id}_{i}" for i in range(20)]
    results: dict[int, Any] = {}
    failures: dict[int, str] = {}
    for index, job in enumerate(submitit.helpers.as_completed(jobs, timeout=WAIT_S)):
        del index
        element = int(job.job_id.split("_")[1])
        try:
            results[element] = job.result()
        except FailedJobError as error:
            failures[element] = str(error)
    assert results == {i: i * i for i in range(20) if i != 7}
    assert list(failures) == [7]
    assert "ValueError: element 7 fails on purpose" in failures[7]
    assert "square_or_fail" in failures[7]  # the remote traceback, with its frames
    assert [job.state for job in jobs].count("COMPLETED") == 19 and jobs[7].state == "FAILED"
    assert all(job.paths.stdout.exists() for job in jobs)  # A_a_0_log.out per element


def test_batch_context_submits_one_array(executor: submitit.AutoExecutor) -> None:
    with executor.batch():
        first = executor.submit(square_or_fail, 3, -1)
        second = executor.submit(square_or_fail, 4, -1)
    assert first.job_id.endswith("_0") and second.job_id.endswith("_1")
    assert [first.result(timeout=WAIT_S), second.result(timeout=WAIT_S)] == [9, 16]


def test_cancel_a_pending_and_a_running_job(
    executor: submitit.AutoExecutor, gate: Path, tmp_path: Path
) -> None:
    running = executor.submit(Gated(), str(gate))
    executor.update_parameters(slurm_additional_parameters={"begin": "now+1hour"})
    pending = executor.submit(Gated(), str(gate))
    wait_for(lambda: pending.pending_reason == "BeginTime" or pending.state != "PENDING",
             "the pending job's reason", WAIT_S)
    assert pending.state == "PENDING" and pending.pending_reason == "BeginTime"
    wait_for(lambda: running.summary().runs == 1 and running.state == "RUNNING",
             "the running job", WAIT_S)
    for job in (pending, running):
        job.cancel()
        assert job.state == "CANCELLED" and job.done()
        with pytest.raises(UncompletedJobError):
            job.result()

    def gone(job_id: str) -> bool:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                             capture_output=True, text=True).stdout.split()
        return out == ["CANCELLED"]

    for job in (pending, running):  # Slurm cancelled them too: nothing runs on
        wait_for(lambda job=job: gone(job.job_id), f"Slurm to cancel {job.job_id}", WAIT_S)
    pid = next(e["pid"] for e in running.events() if e["event"] == "started")
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the worker to end", WAIT_S)


def test_cancelled_by_scancel_outside_is_seen(executor: submitit.AutoExecutor, gate: Path) -> None:
    job = executor.submit(Gated(), str(gate))
    wait_for(lambda: job.state == "RUNNING", "the job to run", WAIT_S)
    subprocess.run(["scancel", job.job_id], check=True)
    job.wait(timeout=WAIT_S)
    assert job.state == "CANCELLED"
    assert job.summary().terminal["event"] == "cancelled"  # recorded in the folder


def test_a_job_that_dies_without_a_result_ends_failed(
    executor: submitit.AutoExecutor, accounting: bool
) -> None:
    job = executor.submit(die_without_result, 3)
    with pytest.raises(UncompletedJobError) as caught:
        job.result(timeout=WAIT_S)  # does not hang, whichever mode states come from
    assert job.state == "FAILED"
    assert "Slurm reports FAILED (exit code 3:0)" in str(caught.value)
    assert STATES.accounting is accounting


def test_one_scheduler_call_per_tick_for_many_jobs(
    executor: submitit.AutoExecutor, gate: Path, accounting: bool
) -> None:
    executor.update_parameters(slurm_additional_parameters={"begin": "now+1hour"})
    jobs = executor.map_array(Gated(), [str(gate)] * 10) + [
        executor.submit(Gated(), str(gate)) for _ in range(2)
    ]
    seen: list[list[str]] = []
    watcher = Watcher(min_interval_s=0.05, max_interval_s=0.2)
    before, ticks = COUNTER.total, 0
    subscription = watcher.watch(jobs, lambda statuses: seen.append([s.state for s in statuses]))
    try:
        wait_for(lambda: len(seen) >= 15, "15 ticks of the watcher", WAIT_S)
        ticks = watcher.ticks
        calls = COUNTER.total - before
    finally:
        subscription.cancel()
    assert seen[-1] == ["PENDING"] * 12
    # At most one refresh a tick for all 12 jobs: squeue alone without accounting; with it,
    # sacct plus squeue for the pending ones (their live Reason).
    per_refresh = 2 if accounting else 1
    assert 1 <= calls <= per_refresh * ticks
    assert STATES.accounting is accounting
    assert COUNTER.by_command.get("squeue", 0) > 0
    assert (COUNTER.by_command.get("sacct", 0) > 1) is accounting
    # Slurm says Reason=None from the release until its scheduler's next pass, then BeginTime
    # (measured here: None for up to 1 s; CI once looked within that second).
    wait_for(lambda: all(job.pending_reason == "BeginTime" for job in jobs), "BeginTime", WAIT_S)


def test_restart_count_from_slurm(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    job = executor.submit(Gated(), str(gate))
    wait_for(lambda: job.state == "RUNNING", "RUNNING", WAIT_S)
    wait_for(lambda: job.summary().runs == 1, "the worker of the first run", WAIT_S)
    # A requeue by Slurm alone (an admin's scontrol requeue, not through the worker) is
    # counted too; the run's SIGTERM tells the worker, which checkpoints before it goes.
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    wait_for(lambda: job.restart_count == 1, "Slurm's restart count", WAIT_S)
    wait_for(lambda: job.summary().runs == 2, "the second run", WAIT_S)
    gate.touch()
    assert job.result(timeout=WAIT_S)["runs"] == [0, 1]
    assert [e.get("by") for e in job.events() if e["event"] == "requeued"] == ["scheduler"]


def test_two_tasks_run_under_srun_and_checkpoint_together(
    executor: submitit.AutoExecutor, gate: Path
) -> None:
    # Real srun on the one node; several nodes cannot be shown here (single-node cluster).
    executor.update_parameters(tasks_per_node=2, cpus_per_task=1)
    assert "exec srun " in executor.executor.sbatch_script(0)
    job = executor.submit(whoami)
    results = job.results(timeout=WAIT_S)
    assert [r["rank"] for r in results] == [0, 1]
    assert {r["num_tasks"] for r in results} == {2}
    assert job.paths.for_task(1).stdout.exists()
    # Both tasks get the signal (srun steps); task 0 checkpoints and requeues the job.
    gated = executor.submit(Gated(), str(gate))
    wait_for(lambda: gated.summary().runs == 1 and gated.state == "RUNNING", "run 0", WAIT_S)
    gated._interrupt()
    wait_for(lambda: gated.summary().runs == 2, "run 1", WAIT_S)
    gate.touch()
    both = gated.results(timeout=WAIT_S)
    assert [r["runs"] for r in both] == [[0, 1], [0, 1]]
    assert sorted(e["task"] for e in gated.events() if e["event"] == "signal") == [0, 1]


def test_a_failure_after_sbatch_cancels_the_held_job(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one fake here: the job folder "fails" while the files are written (a full disk
    # cannot be made on demand); sbatch, the held job and its scancel are real.
    executor = submitit.AutoExecutor(folder)
    original = executor.executor._write_job_files
    written: list[str] = []

    def fail_on_second(reservation: Any, job_id: str, pickled: Any) -> list[Path]:
        if written:
            raise OSError(28, "No space left on device")
        written.append(job_id)
        return original(reservation, job_id, pickled)

    monkeypatch.setattr(executor.executor, "_write_job_files", fail_on_second)
    with pytest.raises(FailedSubmissionError, match="No space left"):
        executor.map_array(square_or_fail, range(3), [-1] * 3)
    array_id = written[0].split("_")[0]
    states = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", array_id, "-o", "%T"],
                            capture_output=True, text=True).stdout.split()
    assert states and set(states) == {"CANCELLED"}  # never ran: it was held, then cancelled
    assert [p.name for p in folder.iterdir()] == []


class _Interleaved(submitit.SlurmExecutor):
    """Each submission waits, its job held, until the other one's is held too (the one
    fake here: a barrier in a hook makes the two interleave the same way every time)."""

    barrier = threading.Barrier(2)

    def _launch(self, *args: Any) -> Any:
        self.barrier.wait(timeout=WAIT_S)
        return super()._launch(*args)


def test_two_threads_submitting_through_one_executor_release_their_own_jobs(
    folder: Path,
) -> None:
    # Each submission releases the job it submitted held: the held id was an attribute of
    # the executor, so both released the second job and the first stayed held for ever.
    executor = _Interleaved(folder)
    jobs: list[submitit.Job[Any]] = []
    threads = [
        threading.Thread(target=lambda x=x: jobs.append(executor.submit(square_or_fail, x, -1)))
        for x in (3, 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job.result(timeout=WAIT_S) for job in jobs) == [9, 16]


def test_a_job_slurm_no_longer_knows_ends_failed(folder: Path) -> None:
    # A job re-attached long after it ended, when squeue has forgotten it (MinJobAge) and
    # there is no accounting to ask (or the id never existed): its end is not waited for.
    from jupyter_slurm_ckpt.core.events import append_event
    from jupyter_slurm_ckpt.core.files import ensure_private_folder
    from jupyter_slurm_ckpt.core.info import JobInfo
    from jupyter_slurm_ckpt.core.paths import JobPaths

    ensure_private_folder(folder)
    paths = JobPaths(folder, "987654321")
    JobInfo("987654321", "slurm", str(folder), submitted_at=time.time() - 3600).write(paths.info)
    append_event(paths.events, "submitted", cluster="slurm")
    job = submitit.Job(folder, "987654321")
    with pytest.raises(UncompletedJobError, match="Slurm has no record of this job"):
        job.result(timeout=WAIT_S)
    assert job.state == "FAILED"
