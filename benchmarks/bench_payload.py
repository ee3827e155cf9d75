"""Writing and loading large states: ours, ``np.save`` + ``fsync`` and submitit, side by side.

For states of 64 MiB, 512 MiB and 2 GiB (a callable holding one numpy array), in one run:

- write time: ``payload.dump(..., durable=True)`` (a checkpoint: fsynced), ``np.save`` of the
  array into an open file + ``fsync`` (the disk's limit: nothing but the array's bytes), the
  array's bytes written from its memory in 1 MiB slices + ``fsync`` (``raw+fsync``: on some
  machines, this one included, one ``write(2)`` of a whole large buffer, as ``np.save`` does,
  is slower and less steady than slices), and submitit 1.5.4's ``cloudpickle_dump`` of the same
  callable (which does not fsync);
- load time: ``payload.load``, ``np.load``, ``readinto`` an empty array, submitit's
  ``pickle_load``;
- extra peak memory of each, beyond the state itself: ``ru_maxrss`` after the operation minus
  before it (minus the state, for a load). Every measure runs in a fresh process.

Then one ``%%slurm`` submission of a 512 MiB state through a real ``InteractiveShell``: how many
times its payload was pickled, and the submission's time and extra peak memory.

submitit 1.5.4 is installed with ``pip install --target`` into a temporary folder for the run
(nothing of it is kept). Targets (issue 15): write time at most 1.2x ``np.save`` + ``fsync``;
extra peak memory at most 64 MiB at every size; the submission pickles once.

Run: ``.venv/bin/python benchmarks/bench_payload.py [--sizes 64,512,2048] [--repeats 3]
[--dir DIR]`` (the files go to a temporary folder under ``DIR``, removed after each load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 1024**2
METHODS = ("ours", "np.save+fsync", "raw+fsync", "submitit")
RAW_SLICE = 1024 * 1024
SUBMITIT_VERSION = "1.5.4"


class Model:
    """A callable holding a large state (what a checkpoint of a training job holds)."""

    def __init__(self, weights: Any) -> None:
        self.weights = weights
        self.step = 0

    def __call__(self) -> int:
        return self.step


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# -- one measure, in a fresh process ------------------------------------------------------------


def _write(method: str, size: int, path: Path) -> dict[str, float]:
    import numpy as np
    from submitit.core.utils import cloudpickle_dump
    from submitit.helpers import DelayedSubmission as TheirDelayedSubmission

    from jupyter_slurm_ckpt import DelayedSubmission
    from jupyter_slurm_ckpt.core import payload

    weights = np.arange(size // 8, dtype=np.float64)  # resident: every page written
    before = _max_rss()
    start = time.perf_counter()
    if method == "ours":
        payload.dump(DelayedSubmission(Model(weights)), path, durable=True)
    elif method == "np.save+fsync":
        with open(path, "wb") as stream:
            np.save(stream, weights)
            stream.flush()
            os.fsync(stream.fileno())
    elif method == "raw+fsync":
        _raw_write(memoryview(weights).cast("B"), path)
    else:
        cloudpickle_dump(TheirDelayedSubmission(Model(weights)), path)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra": _max_rss() - before}


def _raw_write(view: memoryview, path: Path) -> None:
    """The array's bytes alone, in 1 MiB slices of its memory, fsynced: the disk's speed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while view:
            view = view[os.write(fd, view[:RAW_SLICE]) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_load(path: Path) -> Any:
    import numpy as np

    weights = np.empty(path.stat().st_size // 8, dtype=np.float64)
    view = memoryview(weights).cast("B")
    with open(path, "rb", buffering=0) as stream:
        while view:  # one read(2) returns at most 2 GiB - 4 KiB
            view = view[stream.readinto(view) :]
    return weights


def _load(method: str, size: int, path: Path) -> dict[str, float]:
    import numpy as np
    from submitit.core.utils import pickle_load

    from jupyter_slurm_ckpt.core import payload

    loaders = {
        "ours": payload.load,
        "np.save+fsync": np.load,
        "raw+fsync": _raw_load,
        "submitit": pickle_load,
    }
    before = _max_rss()
    start = time.perf_counter()
    loaded = loaders[method](path)
    seconds = time.perf_counter() - start
    weights = loaded if "fsync" in method else loaded.function.weights
    assert weights.nbytes == size and weights[-1] == size // 8 - 1
    return {"seconds": seconds, "extra": _max_rss() - before - size}


NOTEBOOK_CELL = """
import numpy as np
reductions = []  # one entry each time the state is pickled
class State:
    def __init__(self, nbytes):
        self.array = np.arange(nbytes // 8, dtype=np.float64)
    def __reduce__(self):
        reductions.append(1)
        return (rebuild, (self.array,))
def rebuild(array):
    state = State.__new__(State)
    state.array = array
    return state
def train(state):
    return state.array.nbytes
state = State({size})
"""


def _submit(size: int, folder: Path) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell

    os.chdir(folder)
    shell = InteractiveShell.instance()
    for cell in (
        "%load_ext jupyter_slurm_ckpt",
        "%config SlurmMagics.max_payload_mb = 4096",
        NOTEBOOK_CELL.format(size=size),
    ):
        shell.run_cell(cell).raise_error()
    before = _max_rss()
    start = time.perf_counter()
    shell.run_cell("%%slurm --cluster debug --no-widget\njob = train(state)\n").raise_error()
    seconds = time.perf_counter() - start
    extra = _max_rss() - before
    assert shell.user_ns["job"].result() == size
    return {"seconds": seconds, "extra": extra, "pickled": len(shell.user_ns["reductions"])}


def _child(argv: list[str]) -> None:
    operation, method, size, path = argv[0], argv[1], int(argv[2]), Path(argv[3])
    if operation == "write":
        result = _write(method, size, path)
    elif operation == "load":
        result = _load(method, size, path)
    else:
        result = _submit(size, path)
    print(json.dumps(result))


# -- the run ------------------------------------------------------------------------------------


def _measure(operation: str, method: str, size: int, path: Path, env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, "--child", operation, method, str(size), str(path)],
        capture_output=True, text=True, env=env, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{operation} {method} {size // MB} MiB failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def _install_submitit(target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         f"submitit=={SUBMITIT_VERSION}"],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="64,512,2048", help="state sizes in MiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    sizes = [int(value) * MB for value in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="jsc-bench-payload-", dir=args.dir))
    root.chmod(0o700)
    try:
        _install_submitit(root / "submitit")
        env = dict(os.environ, PYTHONPATH=str(root / "submitit"))
        rows = {}
        for size in sizes:
            _check_disk(root, size)
            found: dict[tuple[str, str], list[dict[str, float]]] = {}
            for repeat in range(args.repeats):
                for method in METHODS:  # alternated, so that the machine's load hits all alike
                    path = root / f"{method}-{size // MB}-{repeat}.bin"
                    for operation in ("write", "load"):
                        measure = _measure(operation, method, size, path, env)
                        found.setdefault((method, operation), []).append(measure)
                    path.unlink()
            rows[size] = found
        submission = _measure("submit", "ours", 512 * MB, root, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _report(rows, submission, args.repeats)


def _check_disk(root: Path, size: int) -> None:
    free = shutil.disk_usage(root).free
    if free < 3 * size:
        raise SystemExit(f"only {free // MB} MiB free under {root}: {3 * size // MB} MiB needed")


def _median(values: list[dict[str, float]], key: str) -> float:
    return statistics.median(value[key] for value in values)


def _report(rows: dict[int, Any], submission: dict[str, float], repeats: int) -> None:
    head = f"{'state':>8} {'measure':<24}" + "".join(f"{m:>16}" for m in METHODS)
    head += f"{'ours/np.save':>14}{'ours/raw':>10}"
    print(f"medians of {repeats}, each measure in a fresh process; submitit {SUBMITIT_VERSION}")
    print(head)
    worst_ratio, worst_extra = 0.0, 0.0
    for size, found in rows.items():
        for operation, key, unit in (
            ("write", "seconds", "s"),
            ("load", "seconds", "s"),
            ("write", "extra", "MiB"),
            ("load", "extra", "MiB"),
        ):
            # ru_maxrss counts pages: a load can read as a few KiB below the state's size.
            values = {m: max(_median(found[(m, operation)], key), 0.0) for m in METHODS}
            label = f"{operation} {'time' if key == 'seconds' else 'extra peak memory'}"
            scale = 1 if key == "seconds" else MB
            cells = "".join(
                f"{values[m] / scale:>13.2f} {unit:<2}" if key == "seconds"
                else f"{values[m] / scale:>12.0f} {unit:<3}"
                for m in METHODS
            )
            ratios = ""
            if key == "seconds":
                ratio = values["ours"] / values["np.save+fsync"]
                ratios = f"{ratio:>13.2f}x{values['ours'] / values['raw+fsync']:>9.2f}x"
                if operation == "write":
                    worst_ratio = max(worst_ratio, ratio)
            else:
                worst_extra = max(worst_extra, values["ours"] / MB)
            print(f"{size // MB:>4} MiB {label:<24}{cells}{ratios}")
    print("submitit's cloudpickle_dump does not fsync; np.save+fsync writes the array alone")
    print(
        f"%%slurm submission of a 512 MiB state: pickled {submission['pickled']:.0f} time(s), "
        f"{submission['seconds']:.2f} s, extra peak memory {submission['extra'] / MB:.0f} MiB"
    )
    print(
        f"targets: write time <= 1.2x np.save+fsync: worst {worst_ratio:.2f}x; extra peak "
        f"memory <= 64 MiB: worst {worst_extra:.0f} MiB; pickled once: "
        f"{'yes' if submission['pickled'] == 1 else 'no'}"
    )


if __name__ == "__main__":
    main()
