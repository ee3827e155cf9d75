"""Writing and loading large states: ours beside ``np.save`` + ``fsync``, submitit and torch.

For states of 64 MiB, 512 MiB and 2 GiB (a callable holding one numpy array), in one run:

- write time: ``payload.dump(..., durable=True)`` (a checkpoint: fsynced), ``np.save`` of the
  array into an open file + ``fsync`` (the disk's limit: nothing but the array's bytes), the
  array's bytes written from its memory in 1 MiB slices + ``fsync`` (``raw+fsync``: on some
  machines, this one included, one ``write(2)`` of a whole large buffer, as ``np.save`` does,
  is slower and less steady than slices), and submitit 1.5.4's ``cloudpickle_dump`` of the same
  callable (which does not fsync);
- load time: ``payload.load``, ``np.load``, ``readinto`` an empty array, submitit's
  ``pickle_load``;
- extra peak memory of each, beyond the state itself: the peak resident size during the
  operation (``VmHWM``, reset just before it) minus the resident size before it (minus the
  state, for a load). Every measure runs in a fresh process.

Then PyTorch states (``torch_states.py``; skipped when torch is not installed), in the same
run: a 512 MiB model with SGD, the same model with Adam (1.5 GiB in all) and a 2 GiB model
with SGD, our checkpoint of the ``Checkpointable`` holding model and optimizer beside
``torch.save`` of their state dicts + ``fsync`` and ``torch.load``.

Then one ``%%slurm`` submission of a 512 MiB state through a real ``InteractiveShell``: how many
times its payload was pickled, and the submission's time and extra peak memory.

submitit 1.5.4 is installed with ``pip install --target`` into a temporary folder for the run
(nothing of it is kept). Targets (issues 15 and 23): write time at most 1.2x ``np.save`` +
``fsync`` and 1.2x ``torch.save`` + ``fsync``, load at most 1.5x ``torch.load``; extra peak
memory at most 64 MiB at every size; the submission pickles once.

Run: ``.venv/bin/python benchmarks/bench_payload.py [--sizes 64,512,2048] [--torch-states
sgd:512,adam:1536,sgd:2048] [--repeats 3] [--dir DIR]`` (the files go to a temporary folder
under ``DIR``, removed after each load; ``--sizes ''`` or ``--torch-states ''`` skips a part).
"""

from __future__ import annotations

import argparse
import json
import os
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


def _status(field: str) -> int:
    """A size from /proc/self/status, in bytes."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _start_peak() -> int:
    """The resident size now; the peak is measured from here (it is reset)."""
    resident = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    return resident


def _extra_since(resident: int) -> int:
    return _status("VmHWM") - resident


# -- one measure, in a fresh process ------------------------------------------------------------


def _write(method: str, size: int, path: Path) -> dict[str, float]:
    import numpy as np
    from submitit.core.utils import cloudpickle_dump
    from submitit.helpers import DelayedSubmission as TheirDelayedSubmission

    from jupyter_slurm_ckpt import DelayedSubmission
    from jupyter_slurm_ckpt.core import payload

    weights = np.arange(size // 8, dtype=np.float64)  # resident: every page written
    before = _start_peak()
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
    return {"seconds": seconds, "extra": _extra_since(before)}


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
    before = _start_peak()
    start = time.perf_counter()
    loaded = loaders[method](path)
    seconds = time.perf_counter() - start
    weights = loaded if "fsync" in method else loaded.function.weights
    assert weights.nbytes == size and weights[-1] == size // 8 - 1
    return {"seconds": seconds, "extra": _extra_since(before) - size}


def _torch_write(method: str, spec: str, path: Path) -> dict[str, float]:
    import torch_states

    trainer = torch_states.build(*torch_states.parse(spec))
    before = _start_peak()
    start = time.perf_counter()
    torch_states.write(method, trainer, path)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra": _extra_since(before)}


def _torch_load(method: str, spec: str, path: Path) -> dict[str, float]:
    import torch  # noqa: F401  (imported before the measure, as a job has it)
    import torch_states

    _, size = torch_states.parse(spec)
    before = _start_peak()
    start = time.perf_counter()
    loaded = torch_states.load(method, path)
    seconds = time.perf_counter() - start
    assert loaded == size, f"{loaded} bytes of tensors loaded, {size} written"
    return {"seconds": seconds, "extra": _extra_since(before) - size}


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
    before = _start_peak()
    start = time.perf_counter()
    shell.run_cell("%%slurm --cluster debug --no-widget\njob = train(state)\n").raise_error()
    seconds = time.perf_counter() - start
    extra = _extra_since(before)
    assert shell.user_ns["job"].result() == size
    return {"seconds": seconds, "extra": extra, "pickled": len(shell.user_ns["reductions"])}


def _child(argv: list[str]) -> None:
    operation, method, size, path = argv[0], argv[1], argv[2], Path(argv[3])
    operations = {
        "write": lambda: _write(method, int(size), path),
        "load": lambda: _load(method, int(size), path),
        "torch-write": lambda: _torch_write(method, size, path),
        "torch-load": lambda: _torch_load(method, size, path),
        "submit": lambda: _submit(int(size), path),
    }
    print(json.dumps(operations[operation]()))


# -- the run ------------------------------------------------------------------------------------


def _measure(operation: str, method: str, size: str, path: Path, env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, "--child", operation, method, size, str(path)],
        capture_output=True, text=True, env=env, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{operation} {method} {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def _install_submitit(target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         f"submitit=={SUBMITIT_VERSION}"],
        check=True,
    )


Found = dict[tuple[str, str], list[dict[str, float]]]


def _measure_state(
    root: Path, env: dict[str, str], state: str, methods: tuple[str, ...], repeats: int,
    prefix: str = "",
) -> Found:
    """Write then load ``state`` with each method, ``repeats`` times, alternated (so that the
    machine's load hits all alike); each file is removed after its load."""
    found: Found = {}
    for repeat in range(repeats):
        for method in methods:
            path = root / f"{method}-{state.replace(':', '-')}-{repeat}.bin"
            for operation in ("write", "load"):
                measure = _measure(prefix + operation, method, state, path, env)
                found.setdefault((method, operation), []).append(measure)
            path.unlink()
    return found


def _torch_methods() -> tuple[str, ...] | None:
    try:
        import torch_states
    except ImportError as error:  # torch is optional
        print(f"torch states skipped: {error} (pip install torch==2.13.0)")
        return None
    return torch_states.METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="64,512,2048", help="numpy state sizes in MiB")
    parser.add_argument(
        "--torch-states", default="sgd:512,adam:1536,sgd:2048", help="KIND:MIB, KIND sgd|adam"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    sizes = [int(value) * MB for value in filter(None, args.sizes.split(","))]
    torch_specs = list(filter(None, args.torch_states.split(",")))
    torch_methods = _torch_methods() if torch_specs else None
    root = Path(tempfile.mkdtemp(prefix="jsc-bench-payload-", dir=args.dir))
    root.chmod(0o700)
    try:
        _install_submitit(root / "submitit")
        env = dict(os.environ, PYTHONPATH=str(root / "submitit"))
        rows: dict[str, Found] = {}
        for size in sizes:
            _check_disk(root, size)
            rows[f"{size // MB} MiB"] = _measure_state(root, env, str(size), METHODS, args.repeats)
        torch_rows: dict[str, Found] = {}
        for spec in torch_specs if torch_methods else []:
            _check_disk(root, int(spec.partition(":")[2]) * MB)
            torch_rows[spec] = _measure_state(
                root, env, spec, torch_methods or (), args.repeats, prefix="torch-"
            )
        submission = _measure("submit", "ours", str(512 * MB), root, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"medians of {args.repeats}, each measure in a fresh process; submitit "
          f"{SUBMITIT_VERSION}; extra peak memory: beyond the state, resident (VmHWM)")
    if rows:
        _report(rows, METHODS, ("np.save+fsync", "raw+fsync"))
        print("submitit's cloudpickle_dump does not fsync; np.save+fsync writes the array alone")
    if torch_rows and torch_methods:
        _report(torch_rows, torch_methods, ("torch.save+fsync",))
        print("torch.save writes the state dicts of model and optimizer, then fsync; the "
              "load column of torch.save+fsync is torch.load")
    print(
        f"%%slurm submission of a 512 MiB state: pickled {submission['pickled']:.0f} time(s), "
        f"{submission['seconds']:.2f} s, extra peak memory {submission['extra'] / MB:.0f} MiB"
    )


def _check_disk(root: Path, size: int) -> None:
    free = shutil.disk_usage(root).free
    if free < 3 * size:
        raise SystemExit(f"only {free // MB} MiB free under {root}: {3 * size // MB} MiB needed")


def _median(values: list[dict[str, float]], key: str) -> float:
    return statistics.median(value[key] for value in values)


MEASURES = (
    ("write", "seconds", "s"),
    ("load", "seconds", "s"),
    ("write", "extra", "MiB"),
    ("load", "extra", "MiB"),
)


def _report(rows: dict[str, Found], methods: tuple[str, ...], against: tuple[str, ...]) -> None:
    """One table: a line per state and measure, a column per method, then ours/each of
    ``against``; then the worst time ratio against the first of them, the worst extra."""
    head = f"{'state':>10} {'measure':<24}" + "".join(f"{m:>18}" for m in methods)
    head += "".join(f"{'ours/' + m.split('+')[0]:>16}" for m in against)
    print(head)
    worst = {"write": 0.0, "load": 0.0}
    worst_extra = 0.0
    for state, found in rows.items():
        for operation, key, unit in MEASURES:
            # The resident size counts pages: a load can read a few KiB below the state's size.
            values = {m: max(_median(found[(m, operation)], key), 0.0) for m in methods}
            label = f"{operation} {'time' if key == 'seconds' else 'extra peak memory'}"
            if key == "seconds":
                cells = "".join(f"{values[m]:>15.2f} {unit:<2}" for m in methods)
                cells += "".join(f"{values['ours'] / values[m]:>15.2f}x" for m in against)
                worst[operation] = max(worst[operation], values["ours"] / values[against[0]])
            else:
                cells = "".join(f"{values[m] / MB:>14.0f} {unit:<3}" for m in methods)
                worst_extra = max(worst_extra, values["ours"] / MB)
            print(f"{state:>10} {label:<24}{cells}")
    print(
        f"worst ratios against {against[0]}: write {worst['write']:.2f}x, load "
        f"{worst['load']:.2f}x; worst extra peak memory of ours: {worst_extra:.0f} MiB"
    )


if __name__ == "__main__":
    main()
