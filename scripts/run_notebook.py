"""Execute a notebook headless on the local backend and show what its jobs did.

Usage: ``python scripts/run_notebook.py notebooks/01_quickstart.ipynb [--out DIR]``. Prints
where the executed notebook and the job folder are, then each job's event timeline. The kernel
talks over Unix sockets (IPC), not TCP: nothing to eavesdrop on, and no warning about it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

import jupyter_slurm_ckpt as submitit


def timeline(folder: Path, since: float = 0.0) -> list[str]:
    """One line per event of every job in ``folder`` submitted after ``since``, job by job."""
    lines = []
    for info in sorted(folder.glob("*_job.json"), key=lambda p: p.stat().st_mtime):
        job = submitit.Job(folder, info.name[: -len("_job.json")])
        if job.info.submitted_at < since:
            continue
        lines.append(
            f"job {job.job_id} ({job.info.name}): {job.state}, requeued {job.restart_count}x"
        )
        for event in job.events():
            when = datetime.datetime.fromtimestamp(event["t"]).strftime("%H:%M:%S.%f")[:-3]
            details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("t", "event"))
            lines.append(f"  {when}  {event['event']:<13} {details}")
    return lines


@contextlib.contextmanager
def ipc_transport() -> Iterator[Config]:
    """Configuration for kernels that listen on Unix sockets in a private temporary folder
    (removed afterwards): pass it as ``config=`` to ``NotebookClient`` or ``KernelManager``."""
    sockets = tempfile.mkdtemp(prefix="jsc-kernel-")  # 0700, and short: socket paths are limited
    try:
        yield Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--cluster", default="local", choices=["local", "slurm", "auto"])
    args = parser.parse_args()
    source = args.notebook.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    executed = (args.out / f"{source.stem}.executed.ipynb").resolve()
    notebook = nbformat.read(source, as_version=4)
    started = time.time()
    with ipc_transport() as config:
        client = NotebookClient(
            notebook,
            config=config,
            kernel_name="python3",
            timeout=600,
            resources={"metadata": {"path": str(source.parent)}},
            store_widget_state=True,
            # The main job runs on the local backend even where a Slurm client is installed.
            extra_arguments=[f"--SlurmMagics.cluster={args.cluster}"],
        )
        try:
            client.execute()
        finally:
            nbformat.write(notebook, executed)
    folder = source.parent / "slurm_jobs"
    print(f"executed notebook: {executed}")
    print(f"job folder:        {folder} (backend: {args.cluster})")
    print("\n".join(timeline(folder, since=started)))


if __name__ == "__main__":
    main()
