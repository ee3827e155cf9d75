"""Small helpers shared by the test modules (importable because tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbformat import NotebookNode

import jupyter_slurm_ckpt as submitit

# The demo's own kernel set-up: kernels over IPC (Unix sockets), as scripts/run_notebook.py runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from run_notebook import ipc_transport

WAIT_S = 60.0  # generous: other test runs share the 2 cores
#: The name of the kernelspec of the ``venv_kernel_dir`` fixture.
VENV_KERNEL = "jsc-venv"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``condition`` until truthy: tests wait on facts, never on fixed sleeps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def cancel_leftover_jobs(folder: Path) -> None:
    """No test leaves a job running behind it."""
    for info in sorted(folder.rglob("*_job.json")) if folder.exists() else []:
        with contextlib.suppress(Exception):  # some tests break job folders on purpose
            job = submitit.Job(info.parent, info.name[: -len("_job.json")])
            if not job.done():
                job.cancel()


class KernelSession:
    """A client of a real kernel (``km``) that runs cells and returns what they printed."""

    def __init__(self, km: KernelManager, timeout: float = WAIT_S) -> None:
        self.km = km
        self.timeout = timeout
        self.client = km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=timeout)

    def run(self, code: str) -> str:
        """Run a cell; what it printed (an error raises with its traceback)."""
        printed: list[str] = []

        def keep(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                printed.append("\n".join(msg["content"]["traceback"]))

        reply = self.client.execute_interactive(code, timeout=self.timeout, output_hook=keep)
        assert reply["content"]["status"] == "ok", "".join(printed)
        return "".join(printed)

    def restart(self) -> int:
        """Kill the kernel and start a new one (what "Restart kernel" does); returns the old pid."""
        old = self.km.provisioner.process.pid  # type: ignore[union-attr]
        self.client.stop_channels()
        self.km.restart_kernel(now=True)
        self.client = self.km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=self.timeout)
        return int(old)


@contextlib.contextmanager
def venv_kernel(cwd: Path, kernel_dir: Path, jobs: Path) -> Iterator[KernelManager]:
    """A real kernel of the test interpreter (the ``venv_kernel_dir`` fixture's spec) started in
    ``cwd``, over IPC; shut down afterwards, and no job of the ``jobs`` folder left running."""
    with ipc_transport() as config:
        manager = KernelManager(
            kernel_name=VENV_KERNEL,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]),
            config=config,
        )
        manager.start_kernel(cwd=str(cwd))
        try:
            yield manager
        finally:
            manager.shutdown_kernel(now=True)
            cancel_leftover_jobs(jobs)


@contextlib.contextmanager
def venv_notebook_client(
    notebook: NotebookNode, kernel_dir: Path, cwd: Path, **options: Any
) -> Iterator[NotebookClient]:
    """An nbclient ``NotebookClient`` whose kernel is the ``venv_kernel_dir`` fixture's, run in
    ``cwd`` over IPC (nbclient starts and stops it); ``options`` go to ``NotebookClient``."""
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernel_dir.parent), saved]))
    try:
        with ipc_transport() as config:
            yield NotebookClient(
                notebook,
                config=config,
                kernel_name=VENV_KERNEL,
                resources={"metadata": {"path": str(cwd)}},
                **options,
            )
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved


def rewrite_payload_header(path: Path, **fields: str) -> None:
    """Change fields of a job-folder pickle's header line, as another environment writes them."""
    header, newline, stream = path.read_bytes().partition(b"\n")
    values = json.loads(header)
    values.update(fields)
    path.write_bytes(json.dumps(values).encode() + newline + stream)


def mapped_bytes() -> int:
    """The address space this process maps now (what ``RLIMIT_AS`` limits)."""
    import resource

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def cap_address_space(extra: int) -> None:
    """Limit this process's address space to what it maps now plus ``extra`` bytes."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = mapped_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


@contextlib.contextmanager
def address_space_limit(extra: int) -> Iterator[None]:
    """:func:`cap_address_space` for the block, then the limit as it was."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap_address_space(extra)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _cap_in_job(extra: int, preload: tuple[str, ...]) -> AddressSpaceCap:
    """Unpickling an ``AddressSpaceCap`` in a job limits the job's address space."""
    from jupyter_slurm_ckpt.core.environment import ENV_JOB_ID

    if os.environ.get(ENV_JOB_ID):  # never the test process (job.submission() would load it)
        for module in preload:  # mapped before the measure: the state will need them
            __import__(module)
        cap_address_space(extra)
    return AddressSpaceCap(extra, preload)


class AddressSpaceCap:
    """Pickled first in a job's payload, so that everything loaded after it is limited to
    ``extra`` bytes of address space beyond what the job maps then (``preload``: the modules
    the state needs, imported before the measure)."""

    def __init__(self, extra: int, preload: tuple[str, ...] = ()) -> None:
        self.extra = extra
        self.preload = preload

    def __reduce__(self) -> tuple[Any, ...]:
        return (_cap_in_job, (self.extra, self.preload))


def import_torch() -> Any:
    """torch, or this test module skipped where it is not installed; where the suite must run
    the torch tests (``JSC_REQUIRE_TORCH=1``, as ``scripts/test.sh`` sets), a failure."""
    import pytest

    try:
        import torch
    except ImportError as error:
        if os.environ.get("JSC_REQUIRE_TORCH") == "1":
            pytest.fail(f"JSC_REQUIRE_TORCH=1 but torch cannot be imported: {error}")
        pytest.skip(
            "torch is not installed here (scripts/test.sh installs torch==2.13.0, a CPU build)",
            allow_module_level=True,
        )
    return torch


#: Programs written for submitit, run unchanged under ``python -m jupyter_slurm_ckpt.as_submitit``.
PROGRAMS = Path(__file__).resolve().parent / "programs"
#: The submitit release whose API the package implements (installed beside it by some tests).
SUBMITIT_RELEASE = "submitit==1.5.4"


def pip_install_target(target: Path, *requirements: str) -> Path:
    """``pip install --no-deps --target`` (nothing of the test venv is replaced); ``target``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(target), *requirements],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return target


def run_as_submitit(
    argv: list[str], cwd: Path, python_path: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m jupyter_slurm_ckpt.as_submitit ARGV...`` in ``cwd``, with ``python_path``
    (where the real submitit is installed, say) on ``PYTHONPATH``; fails with its output when
    it fails."""
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_slurm_ckpt.as_submitit", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done
