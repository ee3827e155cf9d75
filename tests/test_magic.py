"""``%%slurm`` in a real IPython ``InteractiveShell``: submission, binding, options, config.

Jobs run on the real local backend (subprocesses) or the debug backend; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import jupyter_slurm_ckpt
from jupyter_slurm_ckpt import FailedJobError, Job
from jupyter_slurm_ckpt.views.listing import JobTable

WAIT_S = 120.0  # generous: other engineers run tests on the same 2 cores

COUNTER = """\
import time
from jupyter_slurm_ckpt import Checkpointable, JobEnvironment

class Counter(Checkpointable):
    def __init__(self, step_s=0.01):
        self.count = 0
        self.step_s = step_s
        self.runs = []
    def __call__(self, n):
        self.runs.append(JobEnvironment().restart_count)
        while self.count < n:
            self.count += 1
            time.sleep(self.step_s)
        return self
"""


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_load_and_unload_extension(ipython: Any) -> None:
    manager = ipython.shell.magics_manager
    assert "slurm" in manager.magics["cell"] and "slurm" in manager.magics["line"]
    assert "slurm_jobs" in manager.magics["line"]
    assert any(type(c).__name__ == "SlurmMagics" for c in ipython.shell.configurables)
    ipython.run("%unload_ext jupyter_slurm_ckpt")
    assert "slurm" not in manager.magics["cell"] and "slurm_jobs" not in manager.magics["line"]
    assert not any(type(c).__name__ == "SlurmMagics" for c in ipython.shell.configurables)
    ipython.run("%load_ext jupyter_slurm_ckpt")
    assert "slurm" in manager.magics["cell"]


def test_help_prints_every_option(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ipython.run("%%slurm?\n")
    out = capsys.readouterr().out
    for flag in ("--timeout", "--partition", "--gpus-per-node", "--cpus-per-task", "--mem-gb",
                 "--nodes", "--tasks-per-node", "--name", "--max-num-timeout",
                 "--signal-delay-s", "--cluster", "--folder", "--setup", "--sbatch",
                 "--by-value", "--no-widget", "--dry-run", "--verify-checkpoint"):
        assert flag in out, flag
    assert "SlurmMagics.partition" in out


def test_cell_defined_class_runs_locally_and_comes_back(ipython: Any, tmp_path: Path) -> None:
    ipython.run(f"%%slurm --cluster local --timeout 1 --no-widget\n{COUNTER}\njob = Counter()(5)\n")
    job = ipython.ns["job"]
    assert isinstance(job, jupyter_slurm_ckpt.LocalJob)
    assert "Counter" in ipython.ns  # the body ran in the notebook
    result = job.result(timeout=WAIT_S)
    assert isinstance(result, ipython.ns["Counter"])
    assert (result.count, result.runs) == (5, [0])
    assert job.info.name == "Counter" and job.info.timeout_min == 1
    assert job.paths.folder == tmp_path / "slurm_jobs"


def test_list_comprehension_submits_one_array(ipython: Any) -> None:
    ipython.run(
        "%%slurm --cluster local --no-widget\n"
        "def square(x):\n    return x * x\n"
        "jobs = [square(x) for x in range(3)]\n"
    )
    jobs = ipython.ns["jobs"]
    assert [job.job_id for job in jobs] == ["L1_0", "L1_1", "L1_2"]
    # The preflight pickled the function once, the three calls into one file (hard links).
    assert {job.paths.submitted_pickle.stat().st_nlink for job in jobs} == {3}
    assert [job.result(timeout=WAIT_S) for job in jobs] == [0, 1, 4]


def test_line_form(ipython: Any) -> None:
    ipython.run("def add(a, b):\n    return a + b\n")
    ipython.run('%slurm --cluster debug --name "my job" --no-widget job = add("a b", b=" c")')
    job = ipython.ns["job"]
    assert job.info.name == "my job"
    assert job.result() == "a b c"


def test_unassigned_call_is_submitted_not_bound(ipython: Any, tmp_path: Path) -> None:
    ipython.run("%%slurm --cluster debug --no-widget  # a comment\ndef f():\n    return 1\nf()\n")
    made = sorted(p.name for p in (tmp_path / "slurm_jobs").glob("*_job.json"))
    assert made == ["DEBUG1_job.json"]
    assert "f" in ipython.ns and "job" not in ipython.ns


def test_config_traits_are_the_defaults(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ipython.run('%config SlurmMagics.cluster = "debug"')
    ipython.run('%config SlurmMagics.name = "from-config"')
    ipython.run('%config SlurmMagics.partition = "gpu"')
    ipython.run("%config SlurmMagics.widget = False")
    ipython.run("def one():\n    return 1\n")
    ipython.run("%slurm job = one()")
    assert ipython.ns["job"].cluster == "debug"
    assert ipython.ns["job"].info.name == "from-config"
    ipython.run("%slurm --name from-option job = one()")  # an option beats the config
    assert ipython.ns["job"].info.name == "from-option"
    capsys.readouterr()
    ipython.run("%slurm --dry-run job2 = one()")
    out = capsys.readouterr().out
    assert "ignored by the debug backend: --partition" in out
    assert ipython.run("%config SlurmMagics.partition") == "gpu"


def test_dry_run_local_shows_parameters_and_writes_nothing(
    ipython: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.run(
        f"%%slurm --cluster local --timeout 2 --cpus-per-task 2 --dry-run\n{COUNTER}\n"
        "jobs = [Counter()(n) for n in range(4)]\n"
    )
    out = capsys.readouterr().out
    assert "dry run: nothing submitted" in out
    assert "backend: local" in out
    assert "would submit: a job array of 4 jobs, bound to 'jobs'" in out
    assert "timeout_min=2.0" in out and "cpus_per_task=2" in out and "name='Counter'" in out
    assert "payload: " in out and " KB" in out
    assert "jobs" not in ipython.ns and "Counter" in ipython.ns
    assert files_under(tmp_path) == []


@pytest.mark.slurm  # needs the Slurm client (installed with the cluster)
def test_dry_run_slurm(ipython: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ipython.run("%%slurm --cluster slurm --timeout 5 --dry-run\ndef f():\n    return 1\nf()\n")
    out = capsys.readouterr().out
    assert "backend: slurm" in out and "time=5.0" in out
    assert "sbatch script:" in out or "cannot render its sbatch script" in out
    assert files_under(tmp_path) == []


def test_remote_traceback_shows_the_cells_lines(ipython: Any, tmp_path: Path) -> None:
    ipython.run(
        "%%slurm --cluster local --no-widget\n"
        "def boom(x):\n"
        "    y = x + 1\n"
        "    raise ValueError(f'boom {y}')\n"
        "job = boom(1)\n"
    )
    with pytest.raises(FailedJobError) as caught:
        ipython.ns["job"].result(timeout=WAIT_S)
    message = str(caught.value)
    cells = list((tmp_path / "slurm_jobs" / "cells").glob("cell_*.py"))
    assert len(cells) == 1
    assert f'File "{cells[0]}", line 3, in boom' in message
    assert "raise ValueError(f'boom {y}')" in message and "ValueError: boom 2" in message
    assert "<dynamic-code>" not in message and "<string>" not in message


def test_body_error_is_an_ordinary_traceback_and_submits_nothing(
    ipython: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(NameError):
        ipython.run("%%slurm --cluster local\nx = 1\ny = undefined_name + x\njob = print(y)\n")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # no terminal colours
    # The cell's own frame, with its lines (from linecache: no file is written on failure).
    assert re.search(r"slurm_jobs/cells/cell_\w+\.py:2\n", out), out
    assert "----> 2 y = undefined_name + x" in out
    assert "job" not in ipython.ns
    assert files_under(tmp_path) == []


def test_by_value_module_is_shipped_with_the_job(
    ipython: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cloudpickle

    lib = tmp_path / "lib"  # importable here, not by the job (not on its sys.path)
    lib.mkdir()
    (lib / "jsc_magic_helper.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(lib))
    try:
        ipython.run(
            "%%slurm --cluster local --by-value jsc_magic_helper --no-widget\n"
            "import jsc_magic_helper\njob = jsc_magic_helper.double(21)\n"
        )
        assert ipython.ns["job"].result(timeout=WAIT_S) == 42
        assert "jsc_magic_helper" not in cloudpickle.list_registry_pickle_by_value()
        ipython.run("%%slurm --cluster local --no-widget\njob = jsc_magic_helper.double(2)\n")
        with pytest.raises(FailedJobError, match="jsc_magic_helper"):
            ipython.ns["job"].result(timeout=WAIT_S)  # by reference, the job cannot import it
    finally:
        sys.modules.pop("jsc_magic_helper", None)


def test_large_global_warning(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ipython.run("%config SlurmMagics.warn_global_mb = 1")
    ipython.run(
        "%%slurm --cluster debug --no-widget\n"
        "table = list(range(400_000))\n"
        "def total():\n    return sum(table)\n"
        "job = total()\n"
    )
    err = capsys.readouterr().err
    assert "captures the notebook global 'table'" in err and "used by total" in err
    assert ipython.ns["job"].result() == sum(range(400_000))


def test_display_falls_back_to_text(
    ipython: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "jupyter_slurm_ckpt.views.widget", None)  # as if not installed
    ipython.run("%%slurm --cluster debug\ndef f():\n    return 1\njob = f()\n")
    out = capsys.readouterr().out
    assert 'DebugJob<job_id=DEBUG1, state="QUEUED">' in out
    ipython.run("%%slurm --cluster debug --no-widget\ndef f():\n    return 1\njob = f()\n")
    assert 'DebugJob<job_id=DEBUG2, state="QUEUED">' in capsys.readouterr().out


# -- every error of DESIGN.md §2: one line, nothing submitted ---------------------------------

BODY = "ran_body = True\ndef f(*args):\n    return 1\n"


def refused(ipython: Any, tmp_path: Path, cell: str) -> str:
    """Run a cell that must be refused; check nothing was submitted; return the message."""
    with pytest.raises(UsageError) as caught:
        ipython.run(cell)
    message = str(caught.value)
    assert "\n" not in message, message
    assert "job" not in ipython.ns
    assert list(tmp_path.rglob("*_job.json")) == [] and list(tmp_path.rglob("cell_*.py")) == []
    return message


def test_error_unknown_option(ipython: Any, tmp_path: Path) -> None:
    message = refused(ipython, tmp_path, f"%%slurm --cluster local --gpu 1\n{BODY}job = f()\n")
    assert message == "unrecognized arguments: --gpu 1"
    assert "ran_body" not in ipython.ns  # refused before the cell ran


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--timeout abc", "argument --timeout: expected a number, not 'abc'"),
        ("--timeout 0", "argument --timeout: must be > 0, not 0"),
        ("--gpus-per-node -1", "argument --gpus-per-node: must be >= 0, not -1"),
        ("--nodes 1.5", "argument --nodes: expected a whole number, not '1.5'"),
        ("--cluster nowhere", "argument --cluster: expected one of auto, slurm, local, debug"),
        ("--sbatch account", "argument --sbatch: expected KEY=VALUE"),
        ("--by-value no.such.module_x", "--by-value no.such.module_x: "),
        ("--verify-checkpoint 0", "argument --verify-checkpoint: must be >= 1, not 0"),
        ("--timeout", "argument --timeout: expected one argument"),
        ("--name 'unclosed", "cannot read the options: No closing quotation"),
    ],
)
def test_error_bad_value(ipython: Any, tmp_path: Path, option: str, expected: str) -> None:
    message = refused(ipython, tmp_path, f"%%slurm --cluster local {option}\n{BODY}job = f()\n")
    assert message.startswith(expected), message
    assert "ran_body" not in ipython.ns


def test_error_bad_config_value(ipython: Any, tmp_path: Path) -> None:
    ipython.run("%config SlurmMagics.mem_gb = -2.0")
    message = refused(ipython, tmp_path, f"%%slurm --cluster local\n{BODY}job = f()\n")
    assert message == "mem_gb must be > 0, not -2.0"


def test_error_last_statement_not_a_call(ipython: Any, tmp_path: Path) -> None:
    message = refused(ipython, tmp_path, f"%%slurm --cluster local\n{BODY}job = 1 + f()\n")
    assert message.startswith("the last statement of the cell (line 4) must be the call")
    assert "ran_body" not in ipython.ns
    message = refused(ipython, tmp_path, "%slurm --cluster local --no-widget")
    assert message.startswith("nothing to submit")


def test_error_unpicklable_callable(ipython: Any, tmp_path: Path) -> None:
    cell = (
        "%%slurm --cluster local\n"
        "import threading\n"
        "class Logger:\n"
        "    def __init__(self):\n"
        "        self._lock = threading.Lock()\n"
        "class NetworkTraining:\n"
        "    def __init__(self):\n"
        "        self.logger = Logger()\n"
        "    def __call__(self, path):\n"
        "        return path\n"
        "job = NetworkTraining()('ckpt/net.pt')\n"
    )
    message = refused(ipython, tmp_path, cell)
    assert message.startswith("cannot pickle NetworkTraining().logger._lock")
    assert "__getstate__" in message


def test_error_payload_over_the_size_limit(ipython: Any, tmp_path: Path) -> None:
    ipython.run("%config SlurmMagics.max_payload_mb = 1")
    cell = (
        "%%slurm --cluster local\n"
        "import os\n"
        "class Trainer:\n"
        "    def __init__(self):\n"
        "        self.weights = os.urandom(2 * 1024 * 1024)\n"
        "    def __call__(self):\n"
        "        return len(self.weights)\n"
        "job = Trainer()()\n"
    )
    message = refused(ipython, tmp_path, cell)
    assert message.startswith("the payload is 2.0 MB, over the limit of 1.0 MB")
    assert "Trainer().weights (2.0 MB)" in message


def test_error_cluster_slurm_without_sbatch(
    ipython: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    message = refused(ipython, tmp_path, f"%%slurm --cluster slurm\n{BODY}job = f()\n")
    assert message.startswith("--cluster slurm: sbatch is not on PATH")
    assert "ran_body" not in ipython.ns


@pytest.mark.slurm  # without a reachable cluster any sbatch fails and this would pass vacuously
def test_error_failing_sbatch_keeps_its_stderr(ipython: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        ipython.run(
            f"%%slurm --cluster slurm --partition jsc_no_such_partition\n{BODY}job = f()\n"
        )
    assert "sbatch: error" in str(caught.value)
    assert "job" not in ipython.ns
    assert list(tmp_path.rglob("*_job.json")) == [] and list(tmp_path.rglob("cell_*.py")) == []


# -- %slurm_jobs --------------------------------------------------------------------------------


def test_slurm_jobs_lists_reattaches_and_survives_a_corrupt_job(
    ipython: Any, tmp_path: Path
) -> None:
    ipython.run(f"%%slurm --cluster local --no-widget\n{COUNTER}\njob = Counter()(3)\n")
    ipython.run("%slurm --cluster local --no-widget failing = Counter()('not a number')")
    first, failing = ipython.ns["job"], ipython.ns["failing"]
    first.wait(WAIT_S)
    failing.wait(WAIT_S)
    folder = tmp_path / "slurm_jobs"
    (folder / "L7_job.json").write_text("{ not json")  # a job whose files are corrupt
    (folder / "L8_job.json").write_text(json.dumps({"job_id": "L8", "cluster": "nowhere"}))

    ipython.shell.reset(new_session=False)  # like a restarted kernel: no job objects left
    table = ipython.run("%slurm_jobs")
    assert isinstance(table, JobTable) and ipython.ns["slurm_jobs"] is table
    assert sorted(table) == ["L1", "L2"]
    assert {s.job_id: s.state for s in table.statuses} == {"L1": "COMPLETED", "L2": "FAILED"}
    assert sorted(table.unreadable) == ["L7", "L8"]
    assert table.unreadable["L7"].startswith("JobFolderError: ")
    reattached = table["L1"]
    assert isinstance(reattached, Job) and reattached.job_id == first.job_id
    result = reattached.result()
    assert type(result).__name__ == "Counter" and result.count == 3
    text = repr(table)
    assert "2 jobs: 1 COMPLETED, 1 FAILED" in text and "L7         unreadable" in text
    html = table._repr_html_()
    assert "<table" in html and "L2" in html and "L8" in html
    with pytest.raises(KeyError, match="no job 'L9'"):
        table["L9"]
    elapsed = next(s.elapsed_s for s in table.statuses if s.job_id == "L1")
    assert elapsed is not None and elapsed >= 0


def test_slurm_jobs_other_folder_and_empty(ipython: Any, tmp_path: Path) -> None:
    ipython.run("%%slurm --cluster debug --folder elsewhere --no-widget\ndef f():\n    pass\nf()\n")
    assert list(ipython.run("%slurm_jobs")) == []
    assert "no jobs in" in repr(ipython.run("%slurm_jobs"))
    table = ipython.run("%slurm_jobs --folder elsewhere")
    assert list(table) == ["DEBUG1"] and table["DEBUG1"].cluster == "debug"


def test_ipython_config_loads_the_extension_and_sets_defaults(tmp_path: Path) -> None:
    # A real `ipython` process with a profile: c.InteractiveShellApp.extensions and
    # c.SlurmMagics traits, as a user's ipython_config.py would set them.
    profile = tmp_path / "ipythondir" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['jupyter_slurm_ckpt']\n"
        "c.SlurmMagics.cluster = 'debug'\n"
        "c.SlurmMagics.widget = False\n"
    )
    code = "def f():\n    return 7\n%slurm job = f()\nprint('RESULT', job.cluster, job.result())\n"
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "-c", code],
        cwd=tmp_path,
        env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipythondir")},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert "RESULT debug 7" in done.stdout, done.stdout + done.stderr
