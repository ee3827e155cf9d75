"""Small helpers shared by the test modules (importable because tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

import jupyter_slurm_ckpt as submitit

WAIT_S = 60.0  # generous: other test runs share the 2 cores


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


@contextlib.contextmanager
def venv_kernel(cwd: Path, kernel_dir: Path, jobs: Path) -> Iterator[KernelManager]:
    """A real kernel of this venv (the ``venv_kernel_dir`` fixture's spec) started in ``cwd``;
    shut down afterwards, and no job of the ``jobs`` folder left running."""
    manager = KernelManager(
        kernel_name="jsc-venv",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]),
    )
    manager.start_kernel(cwd=str(cwd))
    try:
        yield manager
    finally:
        manager.shutdown_kernel(now=True)
        cancel_leftover_jobs(jobs)


def rewrite_payload_header(path: Path, **fields: str) -> None:
    """Change fields of a job-folder pickle's header line, as another environment writes them."""
    header, newline, stream = path.read_bytes().partition(b"\n")
    values = json.loads(header)
    values.update(fields)
    path.write_bytes(json.dumps(values).encode() + newline + stream)
