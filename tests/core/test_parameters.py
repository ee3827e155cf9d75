"""submitit's parameter vocabulary: every Slurm name (``SlurmExecutor.update_parameters(name=)``
and ``AutoExecutor.update_parameters(slurm_name=)``) becomes the right sbatch option or script
line; the local names too; conflicting names are refused. (The real cluster receiving them:
tests/slurm/test_slurm_parameters.py.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.errors import InvalidParameterError

# (parameter, value, what the sbatch command line or the batch script then holds)
SLURM_VOCABULARY: list[tuple[str, Any, str]] = [
    ("job_name", "train", "--job-name=train"),
    ("partition", "gpu", "--partition=gpu"),
    ("time", 7, "--time=7"),
    ("time", "1:30:00", "--time=90"),
    ("time", "2-00", "--time=2880"),
    ("nodes", 2, "--nodes=2"),
    ("ntasks_per_node", 3, "--ntasks-per-node=3"),
    ("cpus_per_task", 4, "--cpus-per-task=4"),
    ("cpus_per_gpu", 2, "--cpus-per-gpu=2"),
    ("num_gpus", 1, "--gpus-per-node=1"),
    ("gpus_per_node", 2, "--gpus-per-node=2"),
    ("gpus_per_task", 1, "--gpus-per-task=1"),
    ("qos", "high", "--qos=high"),
    ("setup", ["module load cuda"], "\nmodule load cuda\n"),
    ("teardown", ["echo finished"], "\necho finished\nexit \"$status\"\n"),
    ("mem", "200M", "--mem=200M"),
    ("mem_per_gpu", "4G", "--mem-per-gpu=4G"),
    ("mem_per_cpu", "1G", "--mem-per-cpu=1G"),
    ("signal_delay_s", 30, "--signal=B:USR2@30"),
    ("comment", "a b", "--comment=a b"),
    ("constraint", "a100&ib", "--constraint=a100&ib"),
    ("exclude", "n1,n2", "--exclude=n1,n2"),
    ("account", "lab", "--account=lab"),
    ("gres", "gpu:1", "--gres=gpu:1"),
    ("mail_type", "END", "--mail-type=END"),
    ("mail_user", "a@b.org", "--mail-user=a@b.org"),
    ("nodelist", "n3", "--nodelist=n3"),
    ("dependency", "afterok:12", "--dependency=afterok:12"),
    ("exclusive", True, "--exclusive"),
    ("exclusive", "user", "--exclusive=user"),
    ("array_parallelism", 2, "--array=0-4%2"),
    ("wckey", "proj", "--wckey=proj"),
    ("stderr_to_stdout", True, "--output="),
    ("additional_parameters", {"nice": 5, "hint": "nomultithread"}, "--nice=5"),
    ("srun_args", ["--cpu-bind=none"], "srun --unbuffered"),
    ("use_srun", True, "exec srun --unbuffered"),
    ("reservation", "maint", "--reservation=maint"),
]


def _submission_text(executor: submitit.SlurmExecutor) -> str:
    """What a submission of a 5-job array would give sbatch: its argv (in the script's
    header, one option an item) and the script."""
    return executor.sbatch_script(array_size=5)


@pytest.mark.parametrize(("name", "value", "expected"), SLURM_VOCABULARY)
def test_every_slurm_parameter_reaches_sbatch(
    tmp_path: Path, name: str, value: Any, expected: str
) -> None:
    direct = submitit.SlurmExecutor(tmp_path)
    direct.update_parameters(**{name: value})
    auto = submitit.AutoExecutor(tmp_path, cluster="slurm")
    auto.update_parameters(**{f"slurm_{name}": value})
    assert auto.parameters == direct.parameters
    if name == "srun_args":  # srun arguments apply to srun steps: a multi-task job
        direct.update_parameters(ntasks_per_node=2)
    text = _submission_text(direct)
    assert expected in text
    if name == "stderr_to_stdout":
        assert "--error=" not in text


def test_defaults_and_the_generic_names(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path, cluster="slurm")
    text = _submission_text(executor.executor)  # type: ignore[arg-type]
    assert "--time" not in text and "--mem" not in text  # the cluster's defaults apply
    assert "--error=" in text and "exec " in text and "exec srun" not in text  # one task
    executor.update_parameters(
        name="n", timeout_min=90, mem_gb=3.5, tasks_per_node=2, nodes=1, cpus_per_task=2,
        gpus_per_node=1, stderr_to_stdout=True,
    )  # fmt: skip
    assert executor.parameters == {
        "job_name": "n",
        "time": 90,
        "mem": "3584MB",
        "ntasks_per_node": 2,
        "nodes": 1,
        "cpus_per_task": 2,
        "gpus_per_node": 1,
        "stderr_to_stdout": True,
    }
    text = _submission_text(executor.executor)  # type: ignore[arg-type]
    assert "--mem=3584MB" in text and "--time=90" in text and "--error=" not in text
    assert "--signal=USR2@90" in text and "exec srun" in text  # two tasks: an srun step
    executor.update_parameters(mem_gb=2)
    assert executor.parameters["mem"] == "2GB"


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ({"time": 5}, {"timeout_min": 5}, "time and timeout_min set the same thing"),
        ({"mem": "1G"}, {"mem_gb": 1}, "mem and mem_gb set the same thing"),
        ({"job_name": "a"}, {"name": "b"}, "job_name and name set the same thing"),
        ({"gpus_per_node": 1}, {"num_gpus": 1}, "gpus_per_node and num_gpus"),
        ({"ntasks_per_node": 1}, {"tasks_per_node": 1}, "ntasks_per_node and tasks_per_node"),
    ],
)
def test_two_names_of_one_setting_are_refused(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any], message: str
) -> None:
    executor = submitit.SlurmExecutor(tmp_path)
    with pytest.raises(InvalidParameterError, match=message):
        executor.update_parameters(**first, **second)
    assert executor.parameters == {}  # nothing half-applied
    executor.update_parameters(**first)
    executor.update_parameters(**second)  # one after the other: the later one holds
    assert len(executor.parameters) == 1


def test_settings_slurm_would_refuse_together(tmp_path: Path) -> None:
    executor = submitit.SlurmExecutor(tmp_path)
    executor.update_parameters(mem="4G")
    with pytest.raises(InvalidParameterError, match="mem and mem_per_cpu are exclusive"):
        executor.update_parameters(mem_per_cpu="1G")
    with pytest.raises(InvalidParameterError, match="mem and mem_per_gpu are exclusive"):
        executor.update_parameters(additional_parameters={"mem-per-gpu": "4G"})
    executor.update_parameters(comment="x")
    with pytest.raises(InvalidParameterError, match="--comment is set both"):
        executor.update_parameters(additional_parameters={"comment": "y"})
    with pytest.raises(InvalidParameterError, match="use_srun=False runs one task"):
        executor.update_parameters(use_srun=False, ntasks_per_node=2)
    with pytest.raises(ValueError, match="use the parameter timeout_min"):
        executor.update_parameters(additional_parameters={"time": "10"})
    with pytest.raises(ValueError, match="not a Slurm time limit"):
        executor.update_parameters(time="ten minutes")
    with pytest.raises(ValueError, match="a size like '2GB'"):
        executor.update_parameters(mem="lots")
    assert executor.parameters == {"mem": "4G", "comment": "x"}


def test_the_cluster_specific_value_wins_in_auto(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path, cluster="slurm")
    executor.update_parameters(timeout_min=60, slurm_time=120, tasks_per_node=2)
    assert executor.parameters == {"time": 120, "ntasks_per_node": 2}
    local = submitit.AutoExecutor(tmp_path, cluster="local")
    local.update_parameters(timeout_min=60, slurm_time=120, local_timeout_min=2)
    assert local.parameters == {"timeout_min": 2.0}


def _environment_facts() -> dict[str, Any]:
    environment = submitit.JobEnvironment()
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return {
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "tasks": environment.num_tasks,
        "setup": os.environ.get("JSC_FROM_SETUP"),
    }


def test_every_local_parameter(tmp_path: Path) -> None:
    executor = submitit.AutoExecutor(tmp_path / "jobs", cluster="local", local_max_num_timeout=5)
    executor.update_parameters(
        local_name="facts",
        local_timeout_min=10,
        local_signal_delay_s=20,
        local_nodes=1,
        local_tasks_per_node=2,
        local_cpus_per_task=1,
        local_mem_gb=1,
        local_gpus_per_node=1,
        local_visible_gpus=[3, 5],
        local_setup=["export JSC_FROM_SETUP=yes"],
        local_stderr_to_stdout=True,
        local_array_parallelism=1,
    )
    job = executor.submit(_environment_facts)
    assert job.results(timeout=60) == [{"gpus": "3", "tasks": 2, "setup": "yes"}] * 2
    assert job.stderr(0) is None and "to stderr" in (job.stdout(0) or "")
    info = job.info
    assert (info.name, info.timeout_min, info.signal_delay_s, info.max_num_timeout) == (
        "facts", 10.0, 20.0, 5,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"visible_gpus lists only \[3, 5\]"):
        executor.update_parameters(local_gpus_per_node=3)
    with pytest.raises(ValueError, match="list of GPU numbers"):
        executor.update_parameters(local_visible_gpus="3,5")
