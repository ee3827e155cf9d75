"""100 live job widgets in one kernel: what the watcher costs, and how fast a change shows.

A real kernel (``jupyter_client``, this venv's Python) submits 100 local jobs that run until a
release file appears, and shows each one's widget (``display(job)``: the live ``JobWidget``).
Once every widget shows RUNNING and nothing else runs in the kernel:

- **watcher CPU**: the kernel process's CPU time (``/proc/<pid>/stat``: user + system, all its
  threads) over ``--window`` seconds, as a share of one core; and the widget messages the
  kernel sent per second (iopub ``comm_msg``);
- **latency**: 10 jobs are released one by one; each writes its ``completed`` event and ends.
  From that event's time (written by the job) to the moment this client receives the widget's
  update saying COMPLETED (iopub), median and worst.

Versions side by side: ``--package-path DIR`` (repeatable; a copy of the package first on the
kernel's ``PYTHONPATH``, e.g. ``git archive main jupyter_slurm_ckpt | tar -x -C DIR``).

Run: ``.venv/bin/python benchmarks/bench_widgets.py [--package-path /tmp/main] --package-path .``
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import KernelSession  # noqa: E402 - the tests' kernel client

WIDGETS = 100
RELEASED = 10

SETUP = """
import time
from pathlib import Path
from IPython.display import display
import jupyter_slurm_ckpt as jsc

def wait_for_release(path):
    while not Path(path).exists():
        time.sleep(0.05)
    return path

executor = jsc.LocalExecutor({folder!r})
jobs = [executor.submit(wait_for_release, {release!r} + f"/{{i}}") for i in range({count})]
deadline = time.monotonic() + 300
while any(job.state != "RUNNING" for job in jobs):
    assert time.monotonic() < deadline, [job.state for job in jobs]
    time.sleep(0.2)
for job in jobs:
    display(job)
print([job.job_id for job in jobs])
"""


class Kernel(KernelSession):
    """A real kernel of this venv's Python (over IPC), the package first on its path."""

    def __init__(self, cwd: Path, package: Path) -> None:
        self.specs = Path(tempfile.mkdtemp(prefix="bench-widgets-kernels-"))
        spec = self.specs / "bench"
        spec.mkdir()
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "bench", "language": "python"})
        )
        specs = KernelSpecManager(kernel_dirs=[str(self.specs)])
        sockets = Config({"KernelManager": {"transport": "ipc", "ip": str(self.specs / "k")}})
        manager = KernelManager(kernel_name="bench", kernel_spec_manager=specs, config=sockets)
        manager.start_kernel(cwd=str(cwd), env={**os.environ, "PYTHONPATH": str(package)})
        super().__init__(manager, timeout=600)
        self.pid = manager.provisioner.process.pid  # type: ignore[union-attr]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def messages(self, seconds: float) -> list[tuple[float, dict[str, Any]]]:
        """The iopub messages that arrive within ``seconds``, with their arrival times."""
        found = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.client.get_iopub_msg(timeout=left)
            except queue.Empty:
                break
            found.append((time.time(), msg))
        return found

    def stop(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=True)
        shutil.rmtree(self.specs, ignore_errors=True)


def widget_models(messages: list[tuple[float, dict[str, Any]]]) -> dict[str, str]:
    """The job id each JobWidget shows, by the widget's comm id (the widget opens with its
    traits empty, then its first update names the job)."""
    models: dict[str, str] = {}
    for _, msg in messages:
        content = msg["content"]
        state = content.get("data", {}).get("state", {})
        if msg["msg_type"] == "comm_open" and "job_id" in state:
            models[content["comm_id"]] = state["job_id"]
        elif msg["msg_type"] == "comm_msg" and content.get("comm_id") in models:
            models[content["comm_id"]] = state.get("job_id", models[content["comm_id"]])
    return {comm: job_id for comm, job_id in models.items() if job_id}


def measure(package: Path, window: float) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-widgets-"))
    folder, release = work / "jobs", work / "release"
    release.mkdir()
    kernel = Kernel(work, package)
    try:
        kernel.run("%load_ext jupyter_slurm_ckpt")
        opened: list[tuple[float, dict[str, Any]]] = []
        kernel.client.execute(SETUP.format(folder=str(folder), release=str(release), count=WIDGETS))
        deadline = time.monotonic() + 600
        while not any(m["msg_type"] == "stream" for _, m in opened):
            assert time.monotonic() < deadline, "the widgets were not shown within 10 minutes"
            opened += kernel.messages(5)
            for _, msg in opened:
                if msg["msg_type"] == "error":
                    raise RuntimeError("\n".join(msg["content"]["traceback"]))
        models = widget_models(opened)
        assert len(models) == WIDGETS, f"{len(models)} widgets opened"
        kernel.messages(5)  # the first looks settle
        cpu, started = kernel.cpu_seconds(), time.monotonic()
        quiet = kernel.messages(window)
        cpu_share = (kernel.cpu_seconds() - cpu) / (time.monotonic() - started)
        updates = sum(1 for _, m in quiet if m["msg_type"] == "comm_msg") / window
        latencies = []
        job_ids = sorted(models.values(), key=lambda job_id: int(job_id[1:]))
        for index in range(RELEASED):
            (release / str(index)).touch()
            seen = _completed_at(kernel, models, job_ids[index])
            events = [
                json.loads(line) for line in (folder / f"{job_ids[index]}_events.jsonl").open()
            ]
            completed = next(e["t"] for e in events if e["event"] == "completed")
            latencies.append(seen - completed)
        return {
            "cpu_share": cpu_share,
            "updates_per_second": updates,
            "latency_median_s": statistics.median(latencies),
            "latency_max_s": max(latencies),
        }
    finally:
        for index in range(WIDGETS):
            (release / str(index)).touch()
        kernel.stop()
        shutil.rmtree(work, ignore_errors=True)


def _completed_at(kernel: Kernel, models: dict[str, str], job_id: str) -> float:
    """When this client received the update of ``job_id``'s widget that says COMPLETED."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for arrived, msg in kernel.messages(0.05):
            content = msg["content"]
            if msg["msg_type"] != "comm_msg" or models.get(content.get("comm_id")) != job_id:
                continue
            if content.get("data", {}).get("state", {}).get("job_state") == "COMPLETED":
                return arrived
    raise RuntimeError(f"the widget of {job_id} did not show COMPLETED within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-path", action="append", type=Path, default=[])
    parser.add_argument("--window", type=float, default=60.0, help="seconds of CPU measure")
    args = parser.parse_args()
    packages = [path.resolve() for path in args.package_path] or [ROOT]
    results = {}
    for package in packages:
        results[package] = measure(package, args.window)
        print(f"{package}: {results[package]}", file=sys.stderr, flush=True)
    print(f"{WIDGETS} live widgets in one kernel, CPU over {args.window:g} s, {RELEASED} changes")
    print(f"{'measure':<22}" + "".join(f"{str(p)[-20:]:>22}" for p in packages))
    for key in ("cpu_share", "updates_per_second", "latency_median_s", "latency_max_s"):
        cells = []
        for package in packages:
            value = results[package][key]
            cells.append(f"{value:.1%} of a core" if key == "cpu_share" else
                         f"{value:.2f} s" if key.endswith("_s") else f"{value:.0f}")  # fmt: skip
        print(f"{key:<22}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
