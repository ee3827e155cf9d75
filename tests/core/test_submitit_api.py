"""The rest of submitit's public API (#12): arrays of callables, implicit batches, job info,
cancel(check), per-task logs, Checkpointable arguments, FunctionSequence's words, helpers."""

from __future__ import annotations

import functools
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.errors import UnknownParameterError

from .conftest import wait_running_run
from .jobs_for_tests import Counter, add


def test_submit_array_takes_zero_argument_callables(local: submitit.LocalExecutor) -> None:
    jobs = local.submit_array([functools.partial(add, i, 10) for i in range(3)])
    assert [job.result(timeout=60) for job in jobs] == [10, 11, 12]
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array
    with pytest.raises(TypeError, match="zero-argument callables"):
        local.submit_array([3])
    with pytest.warns(UserWarning, match="no callables"):
        assert local.submit_array([]) == []


def test_a_delayed_submission_in_an_array_keeps_its_checkpoint(tmp_path: Path) -> None:
    executor = submitit.DebugExecutor(tmp_path)
    (job,) = executor.submit_array([submitit.DelayedSubmission(Counter(step_s=0.0), 3)])
    job._interrupt()  # Counter's checkpoint() runs: the array element requeues, not restarts
    assert job.result() == {"count": 3, "runs": [1]}


def test_batch_with_implicit_submissions(local: submitit.LocalExecutor) -> None:
    with local.batch():
        first = local.submit(add, 1, 1)
        with pytest.raises(AttributeError, match="allow_implicit_submissions"):
            first.job_id  # noqa: B018 - reading it is the test
    assert first.result(timeout=60) == 2
    with local.batch(allow_implicit_submissions=True):
        early = local.submit(add, 2, 2)
        early_id = early.job_id  # submits what the batch holds so far
        late = local.submit(add, 3, 3)
    assert isinstance(early, submitit.LocalJob) and early.job_id == early_id
    assert late.job_id.split("_")[0] != early_id.split("_")[0]  # a second array
    assert (early.result(timeout=60), late.result(timeout=60)) == (4, 6)
    with pytest.warns(RuntimeWarning, match="no submission"), local.batch():
        pass


def test_get_info_and_pickled_jobs(local: submitit.LocalExecutor) -> None:
    job = local.submit(add, 1, 2)
    job.result(timeout=60)
    info = job.get_info()
    assert info == {
        "JobID": job.job_id,
        "State": "COMPLETED",
        "NodeList": socket.gethostname(),
        "Restarts": "0",
    }
    again = pickle.loads(pickle.dumps(job))  # a job pickles as (folder, id): it re-attaches
    assert type(again) is submitit.LocalJob and again.result() == 3


def test_cancel_check_and_cancel_at_deletion(local: submitit.LocalExecutor) -> None:
    job = local.submit(Counter(step_s=0.1), 10_000)

    def failing_backend() -> None:
        raise RuntimeError("the scheduler refused")

    job._cancel = failing_backend  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="refused"):
        job.cancel()
    other = local.submit(Counter(step_s=0.1), 10_000)
    other._cancel = failing_backend  # type: ignore[method-assign]
    other.cancel(check=False)  # clean-up code: the failure is not raised
    for refused in (job, other):  # their backend works again: they must not hold slots
        del refused._cancel
        assert refused.cancel()
    watched = local.submit(Counter(step_s=0.1), 10_000).cancel_at_deletion()
    folder, job_id = watched.paths.folder, watched.job_id
    wait_running_run(watched, 0)
    del watched
    reattached = submitit.Job(folder, job_id)
    reattached.wait(timeout=60)
    assert reattached.state == "CANCELLED"


def test_each_task_has_its_own_log(local: submitit.LocalExecutor) -> None:
    def hello() -> None:
        rank = submitit.JobEnvironment().global_rank
        print(f"hello from {rank}")
        print(f"bye from {rank}", file=sys.stderr)

    local.update_parameters(tasks_per_node=2)
    job = local.submit(hello)
    job.wait(timeout=60)
    assert job.task(1).stdout() == "hello from 1\n"  # was task 0's output
    assert job.task(1).stderr() == "bye from 1\n"
    assert job.stdout(0) == "hello from 0\n"
    assert job.stdout() == "hello from 0\n\nhello from 1\n"  # all tasks, as submitit joins them


class Slacker(submitit.helpers.Checkpointable):
    """A Checkpointable without __init__, built with arguments (submitit allows it)."""

    def __call__(self, slack: bool = True) -> str:
        return "slacked" if slack else "worked"


def test_checkpointable_takes_arguments_and_needs_call() -> None:
    assert Slacker(True)() == "slacked"
    assert Slacker(slack=False)(False) == "worked"

    class NotCallable(submitit.helpers.Checkpointable):
        pass

    with pytest.raises(TypeError, match="no __call__ method"):
        NotCallable()


def test_function_sequence_says_where_it_resumes(
    local: submitit.LocalExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    sequence = submitit.helpers.FunctionSequence(verbose=True)
    for index in range(3):
        sequence.add(lambda i: (time.sleep(0.4), i)[1], index)
    job = local.submit(sequence)
    wait_running_run(job, 0)
    time.sleep(0.6)  # item 0 done, item 1 running
    job._interrupt()
    assert job.result(timeout=60) == [0, 1, 2]
    out = job.stdout() or ""
    assert "Starting from 0/3" in out and "Starting from 1/3" in out


def test_clean_env_and_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("TRITON_CACHE_DIR", "/x")
    with submitit.helpers.environment_variables(SLURM_JOB_ID=12, JSC_ONE=1):
        assert os.environ["SLURM_JOB_ID"] == "12"
        with submitit.helpers.clean_env(extra_names=("TRITON_CACHE_DIR",)):
            assert not {"SLURM_JOB_ID", "JSC_ONE", "MASTER_PORT", "TRITON_CACHE_DIR"} & set(
                os.environ
            )
        assert os.environ["MASTER_PORT"] == "29500"
    assert "SLURM_JOB_ID" not in os.environ and "JSC_ONE" not in os.environ


def test_monitor_jobs_reports_until_all_ended(
    local: submitit.LocalExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = local.map_array(add, [1, 2], [1, 2])
    bad = local.submit(add, "a", 1)
    submitit.helpers.monitor_jobs([*jobs, bad], poll_frequency=0.05)
    out = capsys.readouterr().out
    assert f"Monitoring 3 jobs from job arrays {jobs[0].job_id.split('_')[0]}, {bad.job_id}" in out
    assert "All jobs finished, jobs with indices [2] failed" in out
    assert all(job.done() for job in [*jobs, bad])


def test_node_list_and_distributed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The variables Slurm sets in task 3 of a 2-node, 2-task-per-node job (no torch needed).
    for name, value in {
        "SLURM_JOB_ID": "77",
        "JSC_CLUSTER": "slurm",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_JOB_NUM_NODES": "2",
        "JSC_NUM_TASKS": "4",
        "JSC_TASK_ID": "3",
        "SLURM_LOCALID": "1",
    }.items():
        monkeypatch.setenv(name, value)
    exported = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
    for name in (*exported, "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.setenv(name, "")  # so that monkeypatch removes what export() sets
        monkeypatch.delenv(name)
    assert submitit.JobEnvironment().hostnames == ["gpu07", "gpu08"]
    environment = submitit.helpers.TorchDistributedEnvironment().export()
    assert {k: os.environ[k] for k in environment.variables()} == {
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": str(environment.master_port),
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
    }
    assert 20000 <= environment.master_port <= 60000
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    with pytest.raises(RuntimeError, match="already set"):
        submitit.helpers.TorchDistributedEnvironment().export()


def _rendezvous() -> dict[str, Any]:
    """What torch.distributed's env:// does first: rank 0 listens, the others connect."""
    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    address = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
    if env.rank == 0:
        with socket.create_server(("", address[1])) as server:
            server.settimeout(60)
            peers = []
            for _ in range(env.world_size - 1):
                connection, _ = server.accept()
                with connection:
                    peers.append(int(connection.recv(16)))
        return {"rank": 0, "peers": sorted(peers)}
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(address, timeout=5) as connection:
                connection.sendall(str(env.rank).encode())
            return {"rank": env.rank, "world": env.world_size}
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_distributed_environment_lets_the_tasks_of_a_job_meet(
    local: submitit.LocalExecutor,
) -> None:
    local.update_parameters(tasks_per_node=3)
    job = local.submit(_rendezvous)
    assert job.results(timeout=120) == [
        {"rank": 0, "peers": [1, 2]},
        {"rank": 1, "world": 3},
        {"rank": 2, "world": 3},
    ]


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_rsync_snapshot_freezes_the_code_a_job_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repo"
    (repository / "pkg").mkdir(parents=True)
    (repository / "pkg" / "__init__.py").write_text("VERSION = 1\n")
    (repository / "data.bin").write_text("untracked, large")
    (repository / "notes.txt").write_text("tracked, excluded")
    _git(repository, "init", "--quiet")
    _git(repository, "add", "pkg", "notes.txt")
    _git(repository, "commit", "--quiet", "-m", "v1")
    (repository / "pkg" / "__init__.py").write_text("VERSION = 2\n")  # uncommitted: copied
    monkeypatch.chdir(repository / "pkg")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))  # the job imports from the copy
    executor = submitit.LocalExecutor(tmp_path / "jobs")
    snapshot = tmp_path / "snapshot"
    with submitit.helpers.RsyncSnapshot(snapshot, exclude=["notes.txt"]):
        assert Path.cwd() == snapshot
        job = executor.submit(_import_version)
    assert Path.cwd() == repository / "pkg"
    (repository / "pkg" / "__init__.py").write_text("VERSION = 3\n")  # after submission
    assert job.result(timeout=60) == (2, str(snapshot))
    assert sorted(p.name for p in snapshot.iterdir() if p.name != ".git") == ["pkg"]
    assert (snapshot / ".git").is_dir()  # a shallow clone: the job can log its commit


def _import_version() -> tuple[int, str]:
    import pkg  # the snapshot's, first on sys.path as the job's working directory

    return int(pkg.VERSION), os.getcwd()


def test_local_setup_lines_run_before_the_job(local: submitit.LocalExecutor) -> None:
    local.update_parameters(setup=["export JSC_SETUP_MARK=ready", "echo set up"])
    job = local.submit(lambda: os.environ.get("JSC_SETUP_MARK"))
    assert job.result(timeout=60) == "ready"
    assert "set up" in (job.stderr() or "")
    with pytest.raises(ValueError, match="list of shell lines"):
        local.update_parameters(setup="echo one string")


def test_auto_executor_parameter_errors(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path, cluster="local")
    with pytest.raises(UnknownParameterError, match=r"debug_blublu.*\n.*local_num_threads"):
        executor.update_parameters(debug_blublu=2.0, local_num_threads=4)
    with pytest.raises(NameError):  # what submitit raises, and a ValueError as ours
        executor.update_parameters(blublu=2)
    with pytest.raises(AssertionError):  # submitit's wrong-type error, and a ValueError
        executor.update_parameters(mem_gb="2.0GB")
    with pytest.warns(UserWarning, match="Use 'local_setup' instead"):
        executor.update_parameters(setup=["true"])
    assert executor.parameters == {"setup": ("true",)}
    json.dumps(executor.executor._job_info("L1").parameters, default=str)
