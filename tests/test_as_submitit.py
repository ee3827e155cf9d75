"""The ``as_submitit`` switch: programs that say ``import submitit`` run on this package, in the
submitting process and in every job process, with the real submitit installed beside it (and
neither imported nor broken). The same programs on Slurm: tests/slurm/test_slurm_as_submitit.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import PROGRAMS, cancel_leftover_jobs, run_as_submitit

import jupyter_slurm_ckpt
from jupyter_slurm_ckpt.submitit_alias import SWITCH_PATH

PACKAGE_DIR = str(Path(jupyter_slurm_ckpt.__file__).parent)
STEPS = 150


def check_training(done: subprocess.CompletedProcess[str], tasks: int) -> dict[str, Any]:
    """The training program's output: preempted once, resumed from its checkpoint, finished,
    and ``submitit`` was this package in the program and in each run of the job."""
    output = json.loads(done.stdout.splitlines()[-1])
    result = output["result"]
    assert result["step"] == STEPS
    first, second = result["runs"]
    assert (first["restart_count"], first["resumed_at_step"]) == (0, 0)
    assert second["restart_count"] == 1
    assert 5 <= second["resumed_at_step"] < STEPS  # from the checkpoint, not from scratch
    for run in result["runs"]:
        assert run["num_tasks"] == tasks and run["global_rank"] == 0
        assert run["job_id"] == output["job_id"]
        assert run["submitit_module"].startswith(str(SWITCH_PATH))
        assert run["submitit_executor"] == "jupyter_slurm_ckpt.backends.auto"
    for files in (result["submitit_files"], output["submitit_files"]):  # job, program
        assert files and all(file.startswith(PACKAGE_DIR) for file in files), files
    return output


def run_training(
    cluster: str, tasks: int, tmp_path: Path, real_submitit: Path
) -> dict[str, Any]:
    folder = tmp_path / "jobs"
    try:
        done = run_as_submitit(
            [str(PROGRAMS / "submitit_training.py"), cluster, str(folder), str(STEPS),
             "--tasks", str(tasks)],
            cwd=tmp_path, python_path=real_submitit,
        )  # fmt: skip
    finally:
        cancel_leftover_jobs(folder)
    return check_training(done, tasks)


@pytest.mark.parametrize("tasks", [1, 2])
def test_an_unmodified_submitit_program_is_preempted_and_resumes_locally(
    tasks: int, tmp_path: Path, real_submitit: Path
) -> None:
    run_training("local", tasks, tmp_path, real_submitit)


@pytest.mark.parametrize("cluster", ["local", "debug"])
def test_a_payload_naming_submitit_modules_loads_in_the_job(
    cluster: str, tmp_path: Path, real_submitit: Path
) -> None:
    folder = tmp_path / "jobs"
    done = run_as_submitit(  # -m MODULE: the program found on sys.path[0], the working folder
        ["-m", "submitit_payload", cluster, str(folder)], cwd=PROGRAMS, python_path=real_submitit
    )
    output = json.loads(done.stdout.splitlines()[-1])
    assert b"submitit.core.utils" in Path(output["payload"]).read_bytes()
    result = output["result"]
    assert result["delayed_submission"] == "jupyter_slurm_ckpt.core.helpers.DelayedSubmission"
    assert result["submitit"].startswith(str(SWITCH_PATH))


def _python(code: str, real_submitit: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(real_submitit)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_switch_from_python_holds_here_and_in_child_processes(real_submitit: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "import jupyter_slurm_ckpt\n"
        "import jupyter_slurm_ckpt.as_submitit\n"  # the module of that name: still callable
        "jupyter_slurm_ckpt.as_submitit()\n"
        "jupyter_slurm_ckpt.as_submitit()\n"  # twice is once
        "import submitit, submitit.helpers, submitit.core.utils, submitit.core.core\n"
        "import submitit.core.job_environment, submitit.local.local, submitit.local.debug\n"
        "import submitit.slurm.slurm, submitit.auto.auto\n"
        "assert submitit.helpers is jupyter_slurm_ckpt.helpers\n"
        "assert submitit.AutoExecutor is jupyter_slurm_ckpt.AutoExecutor\n"
        "assert submitit.core.utils.DelayedSubmission is jupyter_slurm_ckpt.DelayedSubmission\n"
        "assert submitit.slurm.slurm.SlurmJobEnvironment is jupyter_slurm_ckpt.JobEnvironment\n"
        "assert submitit.local.local.LocalExecutor is jupyter_slurm_ckpt.LocalExecutor\n"
        "assert submitit.core.job_environment.JobEnvironment is jupyter_slurm_ckpt.JobEnvironment\n"
        "child = 'import submitit; print(submitit.__file__)'\n"
        "print(submitit.__file__)\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True,\n"
        "                     check=True).stdout.strip())\n"
        "print(sys.path.count(sys.path[0]), len(sys.path))\n"
    )
    done = _python(code, real_submitit)
    assert done.returncode == 0, done.stderr
    here, child, _ = done.stdout.splitlines()
    assert here.startswith(str(SWITCH_PATH)) and child.startswith(str(SWITCH_PATH))


def test_where_the_switch_is_off_the_real_submitit_is_untouched(real_submitit: Path) -> None:
    code = (
        "import jupyter_slurm_ckpt, submitit\n"
        "print(submitit.__file__, submitit.__version__)\n"
        "print(submitit.helpers.DelayedSubmission(max, 2, 3).result())\n"
        "print(jupyter_slurm_ckpt.submitit_alias.switched_on())\n"
    )
    done = _python(code, real_submitit)
    assert done.returncode == 0, done.stderr
    where, answer, switched = done.stdout.splitlines()
    assert where == f"{real_submitit / 'submitit' / '__init__.py'} 1.5.4"
    assert (answer, switched) == ("3", "False")


def test_switching_after_the_real_submitit_was_imported_says_what_to_do(
    real_submitit: Path,
) -> None:
    done = _python("import submitit, jupyter_slurm_ckpt\njupyter_slurm_ckpt.as_submitit()\n",
                   real_submitit)  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("jupyter_slurm_ckpt.submitit_alias.SubmititAlreadyImportedError")
    assert "before anything imports submitit" in last and "as_submitit" in last


@pytest.mark.parametrize(
    "argv, status, words",
    [([], 2, "usage:"), (["--help"], 0, "usage:"), (["-m"], 2, "-m needs a module name"),
     (["no_such_script.py"], 2, "no_such_script.py: no such file")],
)  # fmt: skip
def test_the_command_line_explains_itself(argv: list[str], status: int, words: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.as_submitit", *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == status
    assert words in done.stdout + done.stderr


def test_the_program_gets_its_own_arguments_and_exit_status(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(
        "import sys, submitit\n"
        "print(sys.argv, sys.path[0] == sys.argv[0].rpartition('/')[0], __name__)\n"
        "sys.exit(int(sys.argv[2]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.as_submitit", str(script), "-m", "7"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 7
    assert done.stdout.strip() == f"{[str(script), '-m', '7']} True __main__"
