"""submitit's public API under our name, and the executor's flow."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from support import rewrite_payload_header

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.errors import JobFolderError, PayloadError
from jupyter_slurm_ckpt.core.files import check_folder_is_safe

from .conftest import wait_running_run
from .jobs_for_tests import Counter, add, fail


def test_submitit_names_exist() -> None:
    for name in [
        "AutoExecutor",
        "LocalExecutor",
        "DebugExecutor",
        "SlurmExecutor",
        "Job",
        "LocalJob",
        "DebugJob",
        "JobEnvironment",
        "helpers",
        "FailedJobError",
        "UncompletedJobError",
        "FailedSubmissionError",
        "Checkpointable",
        "DelayedSubmission",
    ]:
        assert hasattr(submitit, name), name
    for name in [
        "DelayedSubmission",
        "Checkpointable",
        "FunctionSequence",
        "CommandFunction",
        "as_completed",
        "clean_env",
    ]:
        assert hasattr(submitit.helpers, name), name
    import jupyter_slurm_ckpt.helpers as helpers_module

    assert helpers_module.DelayedSubmission is submitit.DelayedSubmission


def test_core_does_not_import_notebook_stacks() -> None:
    import subprocess
    import sys

    code = (
        "import sys, jupyter_slurm_ckpt, jupyter_slurm_ckpt.backends.local.controller,"
        " jupyter_slurm_ckpt.backends.local.agent, jupyter_slurm_ckpt.backends.slurm.task;"
        "bad = [m for m in ('IPython', 'ipywidgets', 'jupyter_server') if m in sys.modules];"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_unknown_parameter_lists_valid_ones(folder: Path) -> None:
    executor = submitit.AutoExecutor(folder, cluster="local")
    with pytest.raises(ValueError, match=r"valid parameters: .*timeout_min"):
        executor.executor.update_parameters(time_min=3)
    with pytest.raises(ValueError, match=r"tiemout_min: unknown parameter"):
        executor.update_parameters(tiemout_min=3)
    with pytest.raises(ValueError, match="timeout_min must be > 0"):
        executor.update_parameters(timeout_min=-1)
    # Other clusters' prefixed parameters are checked, then ignored, as in submitit.
    executor.update_parameters(slurm_partition="gpu", timeout_min=2, local_signal_delay_s=5)
    assert executor.parameters == {"timeout_min": 2.0, "signal_delay_s": 5.0}
    with pytest.raises(ValueError, match="slurm_partiton: the slurm backend has no parameter"):
        executor.update_parameters(slurm_partiton="gpu")


def test_auto_executor_arguments_are_per_cluster(folder: Path) -> None:
    local = submitit.AutoExecutor(folder, cluster="local", slurm_max_num_timeout=7)
    assert local.executor.max_num_timeout == 3  # a Slurm argument: not the local backend's
    mine = submitit.AutoExecutor(folder, cluster="local", local_max_num_timeout=7)
    assert mine.executor.max_num_timeout == 7
    with pytest.warns(UserWarning, match="Use 'slurm_max_num_timeout' instead"):
        submitit.AutoExecutor(folder, cluster="local", max_num_timeout=2)
    with pytest.raises(ValueError, match="cluster-prefixed"):
        submitit.AutoExecutor(folder, cluster="local", python="python3")


def test_results_errors_and_futures_vocabulary(local: submitit.LocalExecutor) -> None:
    ok = local.submit(add, 2, 3)
    bad = local.submit(fail, "boom")
    assert ok.result(timeout=60) == 5 and ok.results() == [5]
    with pytest.raises(submitit.FailedJobError, match="ValueError: boom"):
        bad.result(timeout=60)
    assert isinstance(bad.exception(), submitit.FailedJobError)
    assert ok.exception() is None
    assert "ValueError: boom" in (bad.stderr() or "")
    assert ok.submission().args == (2, 3)
    assert asyncio.run(ok.awaitable().result()) == 5
    slow = local.submit(Counter(step_s=0.1), 1000)
    with pytest.raises(TimeoutError):
        slow.result(timeout=0.2)
    slow.cancel()


def test_map_array_submit_array_batch_and_as_completed(local: submitit.LocalExecutor) -> None:
    jobs = local.map_array(add, [1, 2, 3], [10, 20, 30])
    assert len({j.job_id.split("_")[0] for j in jobs}) == 1
    assert [j.result(timeout=60) for j in jobs] == [11, 22, 33]
    delayed = [submitit.DelayedSubmission(add, i, i) for i in range(3)]
    assert [j.result(timeout=60) for j in local.submit_array(delayed)] == [0, 2, 4]
    with local.batch():
        batched = [local.submit(add, i, 1) for i in range(4)]
    assert [j.result(timeout=60) for j in batched] == [1, 2, 3, 4]
    finished = list(submitit.helpers.as_completed(batched, timeout=60))
    assert sorted(j.job_id for j in finished) == sorted(j.job_id for j in batched)


def test_multi_task_job(local: submitit.LocalExecutor) -> None:
    local.update_parameters(tasks_per_node=3)
    job = local.submit(lambda: submitit.JobEnvironment().global_rank)
    assert job.results(timeout=60) == [0, 1, 2]
    assert job.task(2).result() == 2


def test_function_sequence_resumes_at_first_unfinished(local: submitit.LocalExecutor) -> None:
    import time

    sequence = submitit.helpers.FunctionSequence()
    for index in range(4):
        sequence.add(
            lambda i: (time.sleep(0.4), (i, submitit.JobEnvironment().restart_count))[1], index
        )
    job = local.submit(sequence)
    wait_running_run(job, 0)
    time.sleep(0.6)  # item 0 done, item 1 running
    job._interrupt()
    results = job.result(timeout=60)
    assert [i for i, _ in results] == [0, 1, 2, 3]
    assert results[0][1] == 0 and results[-1][1] == 1  # item 0 was not computed again


def test_command_function(tmp_path: Path) -> None:
    command = submitit.helpers.CommandFunction(["echo", "hello"], verbose=False)
    assert command("world", flag=1).strip() == "hello world --flag=1"
    with pytest.raises(submitit.FailedJobError, match="exited with status 1"):
        submitit.helpers.CommandFunction(["false"], verbose=False)()


def test_clean_env_hides_job_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm.conf")
    with submitit.helpers.clean_env():
        assert "SLURM_JOB_ID" not in os.environ and os.environ["SLURM_CONF"] == "/etc/slurm.conf"
    assert os.environ["SLURM_JOB_ID"] == "12"


def test_debug_executor_runs_and_checkpoints_in_process(folder: Path) -> None:
    executor = submitit.AutoExecutor(folder, cluster="debug")
    executor.update_parameters(debug_max_num_timeout=1)
    job = executor.submit(Counter(step_s=0.0), 5)
    assert job.state == "QUEUED"
    job._interrupt()
    job._interrupt(timeout=True)
    assert job.restart_count == 2
    assert job.result()["count"] == 5
    assert job.result()["runs"] == [2]  # it ran once, as run 2
    failing = executor.submit(fail, "in debug")
    with pytest.raises(submitit.FailedJobError, match="in debug"):
        failing.result()
    late = executor.submit(Counter(), 1)
    late._interrupt(timeout=True)
    late._interrupt(timeout=True)
    assert late.state == "TIMEOUT"
    with pytest.raises(submitit.UncompletedJobError, match="timed out 2 times"):
        late.result()


def test_job_folder_is_private_and_refuses_unsafe_folders(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "jobs"
    job = submitit.LocalExecutor(folder).submit(add, 1, 1)
    job.wait(timeout=60)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    os.chmod(folder, 0o777)
    with pytest.raises(submitit.FailedSubmissionError, match="writable by others"):
        submitit.LocalExecutor(folder).submit(add, 1, 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(submitit.FailedSubmissionError, match="not a directory"):
        submitit.LocalExecutor(blocker).submit(add, 1, 1)
    with pytest.raises(JobFolderError, match="writable by others"):
        check_folder_is_safe(folder)


def test_payload_from_other_versions_names_both(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    payload.dump(submitit.DelayedSubmission(add, 1, 2), path)
    rewrite_payload_header(path, python="3.8.10", cloudpickle="1.6.0")
    with pytest.raises(PayloadError, match=r"Python 3\.8\.10 with cloudpickle 1\.6\.0, but this"):
        payload.load(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(PayloadError, match=f"{path} is truncated"):
        payload.load(path)


def test_oversized_payload_is_refused_before_anything_is_written(folder: Path) -> None:
    executor = submitit.LocalExecutor(folder)
    executor.max_pickle_size_gb = 1 / 1024  # 1 MB
    with pytest.raises(submitit.FailedSubmissionError, match="over the limit"):
        executor.submit(len, b"x" * 2_000_000)
    assert not list(folder.glob("*_job.json"))
