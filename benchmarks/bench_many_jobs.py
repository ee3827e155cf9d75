"""A job folder of 10,000 jobs: how long a user waits everywhere they look.

The folder (built afresh for each version measured) holds 10,000 ended local jobs written with
the package's own writers (``tests/many_jobs.py``: 20 arrays of 100 elements and single jobs,
over 30 days; 5% were killed without a word, so nothing recorded their end) and 20 local jobs
that really run (an array of 10 and 10 single jobs). Each measure runs in a new process, so
"cold" is what a new kernel or a new Jupyter server sees (the OS file cache is warm either way):

- ``%slurm_jobs``: the magic in a real ``InteractiveShell``, with its text and HTML rendering;
  first call (cold), second call (warm);
- re-attach: ``Job(folder, id)`` then ``.state`` of 200 random jobs (median per job);
- the Jupyter server's ``GET jobs`` (a real ``jupyter server``, token auth): the first request
  after the server started (cold), then the median of 20 (warm: the cached listing), and of 5
  made after ``min_poll_interval_s`` (a refresh with warm caches); with a filter (state and
  name); a page 5,000 jobs deep;
- ``clean(dry_run=True)`` of jobs older than 7 days.

Versions side by side: ``--package-path DIR`` (repeatable) puts that copy of the package first
on ``PYTHONPATH`` for the measures (``git archive main jupyter_slurm_ckpt | tar -x -C DIR``);
``.`` is this checkout.

Run: ``.venv/bin/python benchmarks/bench_many_jobs.py [--package-path /tmp/main] --package-path .``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

JOBS = 10_000
RUNNING = 20


def build(folder: Path, lost: float) -> list[Any]:
    """The folder of 10,000 ended jobs, then the running ones (newest); returns those."""
    from many_jobs import build_ended_jobs

    import jupyter_slurm_ckpt as ours

    build_ended_jobs(folder, JOBS, arrays=20, array_size=100, lost=lost, now=time.time())
    executor = ours.LocalExecutor(folder)
    executor.update_parameters(name="live")
    running = executor.map_array(time.sleep, [3600] * (RUNNING // 2))
    running += [executor.submit(time.sleep, 3600) for _ in range(RUNNING // 2)]
    deadline = time.monotonic() + 120
    while any(job.state != "RUNNING" for job in running):
        if time.monotonic() > deadline:
            raise RuntimeError("the running jobs did not start")
        time.sleep(0.1)
    return running


# -- the measures, each in a child process --------------------------------------------------


def child_slurm_jobs(folder: str) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_slurm_ckpt")
    times = []
    for _ in range(2):
        started = time.perf_counter()
        table = shell.run_line_magic("slurm_jobs", f"--folder {folder}")
        repr(table)
        table._repr_html_()
        times.append(time.perf_counter() - started)
    return {"cold_s": times[0], "warm_s": times[1], "jobs": float(len(table))}


def child_reattach(folder: str) -> dict[str, float]:
    import random

    import jupyter_slurm_ckpt as package

    ids = sorted(path.name[: -len("_job.json")] for path in Path(folder).glob("*_job.json"))
    chosen = random.Random(26).sample(ids, 200)
    attach, state = [], []
    for job_id in chosen:
        started = time.perf_counter()
        job = package.Job(folder, job_id)
        attached = time.perf_counter()
        job.state  # noqa: B018 - the measure
        state.append(time.perf_counter() - attached)
        attach.append(attached - started)
    return {"attach_s": statistics.median(attach), "state_s": statistics.median(state)}


def child_clean(folder: str) -> dict[str, float]:
    from datetime import timedelta

    import jupyter_slurm_ckpt as package

    if not hasattr(package, "clean"):
        return {}
    started = time.perf_counter()
    report = package.clean(folder, older_than=timedelta(days=7), dry_run=True)
    return {"dry_run_s": time.perf_counter() - started, "would_remove": float(len(report.removed))}


CHILDREN = {"slurm_jobs": child_slurm_jobs, "reattach": child_reattach, "clean": child_clean}


def run_child(name: str, folder: Path, package: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, str(folder)],
        env={**os.environ, "PYTHONPATH": str(package)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the server -----------------------------------------------------------------------------


class Server:
    """A real ``jupyter server`` with the extension, its root the folder's parent."""

    def __init__(self, root: Path, package: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.token = os.urandom(16).hex()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root}",
             f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", "--ServerApp.open_browser=False",
             "--ServerApp.jpserver_extensions={'jupyter_slurm_ckpt.server': True}",
             "--SlurmJobsConfig.min_poll_interval_s=2",
             *(["--allow-root"] if os.getuid() == 0 else [])],
            env={**os.environ, "PYTHONPATH": str(package)},
            cwd=root,  # not this checkout: ``python -m`` puts the working directory first
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                self.get("api/status")
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the Jupyter server did not start") from None
                time.sleep(0.2)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{path}",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def timed(self, path: str) -> tuple[float, Any]:
        started = time.perf_counter()
        answer = self.get(path)
        return time.perf_counter() - started, answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def rows_of(answer: Any) -> int:
    """How many rows an answer holds (a list before paging, an object with ``jobs`` after)."""
    return len(answer) if isinstance(answer, list) else len(answer["jobs"])


def measure_server(root: Path, package: Path) -> dict[str, float]:
    server = Server(root, package)
    try:
        results: dict[str, float] = {}
        cold, answer = server.timed("jupyter-slurm-ckpt/jobs")
        results.update(cold_s=cold, rows=float(rows_of(answer)))
        if isinstance(answer, dict):
            results["total"] = float(answer["total"])
        results["warm_s"] = statistics.median(
            server.timed("jupyter-slurm-ckpt/jobs")[0] for _ in range(20)
        )
        refreshes = []
        for _ in range(5):
            time.sleep(2.1)  # past min_poll_interval_s: the next request refreshes
            refreshes.append(server.timed("jupyter-slurm-ckpt/jobs")[0])
        results["refresh_s"] = statistics.median(refreshes)
        if isinstance(answer, dict):  # paging and filters exist
            query = "jupyter-slurm-ckpt/jobs?state=FAILED&name=train"
            first, filtered = server.timed(query)
            results.update(filter_first_s=first, filter_total=float(filtered["total"]))
            results["filter_warm_s"] = statistics.median(server.timed(query)[0] for _ in range(10))
            results["deep_page_s"] = statistics.median(
                server.timed("jupyter-slurm-ckpt/jobs?offset=5000&limit=50")[0] for _ in range(5)
            )
        return results
    finally:
        server.stop()


# -- the run ----------------------------------------------------------------------------------


def measure(package: Path, lost: float) -> dict[str, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="bench-many-jobs-"))
    folder = root / "slurm_jobs"
    started = time.perf_counter()
    running = build(folder, lost)
    built = time.perf_counter() - started
    results: dict[str, dict[str, float]] = {"build": {"seconds": built}}
    measures = {
        "slurm_jobs": lambda: run_child("slurm_jobs", folder, package),
        "reattach": lambda: run_child("reattach", folder, package),
        "server": lambda: measure_server(root, package),
        "clean": lambda: run_child("clean", folder, package),
    }
    try:
        for name, run in measures.items():
            results[name] = run()
            print(f"{package}: {name} {results[name]}", file=sys.stderr, flush=True)
        return results
    finally:
        for job in running:
            job.cancel(check=False)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-path", action="append", type=Path, default=[])
    parser.add_argument("--lost", type=float, default=0.05, help="share killed without a word")
    parser.add_argument("--child", nargs=2, metavar=("MEASURE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, folder = args.child
        print(json.dumps(CHILDREN[name](folder)))
        return
    packages = [path.resolve() for path in args.package_path] or [ROOT]
    results = {str(package): measure(package, args.lost) for package in packages}
    print(f"{JOBS:,} ended jobs ({args.lost:.0%} killed without a word) + {RUNNING} running")
    names = list(results)
    print(f"{'measure':<34}" + "".join(f"{Path(name).name[:18]:>20}" for name in names))
    keys = sorted({(group, key) for r in results.values() for group in r for key in r[group]})
    for group, key in keys:
        cells = []
        for name in names:
            value = results[name].get(group, {}).get(key)
            cells.append("n/a" if value is None else _format(key, value))
        print(f"{group + ' ' + key:<34}" + "".join(f"{cell:>20}" for cell in cells))


def _format(key: str, value: float) -> str:
    if key.endswith("_s") or key == "seconds":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:,.0f}"


if __name__ == "__main__":
    main()
