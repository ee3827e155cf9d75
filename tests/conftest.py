"""Fixtures shared by the test modules of ``tests/`` (each module may add its own)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

#: The interpreter the test kernels run: this one, or another environment's, e.g. one with
#: ipykernel 6 (scripts/test.sh runs the kernel tests a second time that way).
KERNEL_PYTHON = os.environ.get("JSC_KERNEL_PYTHON") or sys.executable


@pytest.fixture(scope="session")
def venv_kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec folder holding ``jsc-venv``: a kernel running :data:`KERNEL_PYTHON`.

    Use it with ``KernelSpecManager(kernel_dirs=[str(venv_kernel_dir)])``, or through
    ``support.venv_kernel``/``support.venv_notebook_client``; it needs no ``ipykernel install``
    step, so it works on a fresh CI machine whatever other kernels exist.
    """
    kernels = tmp_path_factory.mktemp("jupyter-data") / "kernels"  # a Jupyter data folder's
    spec_dir = kernels / "jsc-venv"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [KERNEL_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jupyter_slurm_ckpt tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return kernels


@pytest.fixture(scope="session")
def real_submitit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the real submitit 1.5.4 is installed (from PyPI, at test time), to put on
    ``PYTHONPATH`` beside this package: the ``as_submitit`` switch must neither import nor
    break it."""
    from support import SUBMITIT_RELEASE, pip_install_target

    return pip_install_target(tmp_path_factory.mktemp("real-submitit"), SUBMITIT_RELEASE)


class Shell:
    """A real IPython ``InteractiveShell`` whose cells raise their errors (for tests)."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell

    def run(self, code: str) -> Any:
        """Run a cell; raise what it raised (``UsageError`` included); return its value."""
        result = self.shell.run_cell(code, store_history=True)
        result.raise_error()
        return result.result

    @property
    def ns(self) -> dict[str, Any]:
        """The notebook namespace."""
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace


@pytest.fixture
def ipython(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """A real InteractiveShell with ``%load_ext jupyter_slurm_ckpt`` done, cwd in ``tmp_path``.

    Fresh magics (config at its defaults) and a fresh namespace for every test; jobs left
    running under ``tmp_path`` are cancelled afterwards.
    """
    import jupyter_slurm_ckpt

    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.reset(new_session=False)
    shell.extension_manager.unload_extension("jupyter_slurm_ckpt")
    for section in ("SlurmMagics", "SlurmConfig"):  # %config writes into the shell's config
        shell.config.pop(section, None)
    shell.extension_manager.load_extension("jupyter_slurm_ckpt")
    yield Shell(shell)
    for info in sorted(tmp_path.rglob("*_job.json")):
        with contextlib.suppress(Exception):  # some tests corrupt job files on purpose
            job = jupyter_slurm_ckpt.Job(info.parent, info.name[: -len("_job.json")])
            if not job.done():
                job.cancel()


TESTS = Path(__file__).resolve().parent

# -- the real Slurm cluster of the tests marked `slurm` ------------------------------------------
# It is started outside pytest (CI: scripts/test.sh; by hand: eval "$(bash tests/slurm/cluster.sh
# start [--accounting])"), which exports SLURM_CONF. Without it, or with a cluster that does not
# answer, every `slurm` test FAILS with the reason: a CI run must never pass by skipping them.
# JSC_SKIP_SLURM=1 (a developer without root) skips them instead.

START_HINT = (
    'start it as root with `eval "$(bash tests/slurm/cluster.sh start)"` (add --accounting for '
    "sacct), or set JSC_SKIP_SLURM=1 to skip the Slurm tests"
)


@dataclass(frozen=True)
class Cluster:
    """The cluster under test."""

    conf: str
    #: Whether ``sacct`` works (slurmdbd accounting storage), i.e. which polling mode is used.
    accounting: bool
    #: ``"signal"`` when a preempted job gets its USR2 at once (``preempt_send_user_signal``),
    #: ``"stock"`` when its only notice is the SIGTERM at the end of the grace time.
    preemption: str = "signal"
    #: The cluster's nodes (``cluster.sh start --nodes N`` emulates n1..nN).
    nodes: tuple[str, ...] = ()
    #: Whether processes are tracked and bound in cgroups (``cluster.sh start --cgroup``).
    cgroup: bool = False
    #: Slurm's version, e.g. ``(24, 11)``.
    version: tuple[int, int] = (0, 0)


def _run_command(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="session")
def slurm_cluster() -> Cluster:
    """The running dev cluster; fails every Slurm test when there is none (see module doc)."""
    if os.environ.get("JSC_SKIP_SLURM") == "1":
        pytest.skip("JSC_SKIP_SLURM=1: Slurm tests skipped on request")
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        pytest.fail(f"SLURM_CONF is not set, so there is no Slurm cluster to test: {START_HINT}")
    try:
        ping = _run_command("scontrol", "ping")
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"scontrol ping failed ({error}); {START_HINT}")
    if "is UP" not in ping.stdout:
        pytest.fail(
            f"the Slurm cluster of SLURM_CONF={conf} does not answer "
            f"({(ping.stdout + ping.stderr).strip()}); {START_HINT}"
        )
    sacct = _run_command("sacct", "-n", "-X", "-j", "1", "-o", "JobID")
    accounting = sacct.returncode == 0 and "disabled" not in sacct.stdout + sacct.stderr
    config = _run_command("scontrol", "show", "config").stdout
    preemption = "signal" if "preempt_send_user_signal" in config else "stock"
    nodes = _run_command("sinfo", "-h", "-N", "-o", "%N").stdout.split()
    cgroup = re.search(r"^ProctrackType\s*=\s*proctrack/cgroup", config, re.M) is not None
    found = re.search(r"^SLURM_VERSION\s*=\s*(\d+)\.(\d+)", config, re.M)
    version = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    return Cluster(conf, accounting, preemption, tuple(sorted(set(nodes))), cgroup, version)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test marked ``slurm`` needs the cluster (fails, or skips on request, without it)."""
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.fixturenames.insert(0, "slurm_cluster")  # type: ignore[attr-defined]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Ship the test modules' callables by value: jobs run in fresh interpreters (local
    controllers, Slurm allocations) that cannot import the tests, as a notebook's cell would."""
    import cloudpickle

    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(str(TESTS)) and name != __name__:
            cloudpickle.register_pickle_by_value(module)


#: The runtime folder of this test session's local jobs: their agent and their queue's slots.
_RUNTIME_DIR = tempfile.mkdtemp(prefix="jsc-tests-run-")


def pytest_configure(config: pytest.Config) -> None:
    """Run this session's local jobs in a queue of their own. The local queue is the user's,
    across processes (as Slurm's is): the user's own local jobs, or another checkout's test
    session, would hold the slots that the tests count on."""
    os.environ["XDG_RUNTIME_DIR"] = _RUNTIME_DIR


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Leave no local-job agent behind the test run (jobs themselves are cancelled by tests)."""
    from jupyter_slurm_ckpt.backends.local.agent_client import stop_agents

    stop_agents()
    shutil.rmtree(_RUNTIME_DIR, ignore_errors=True)
