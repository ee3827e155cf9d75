"""Callables the core tests submit (importable, so they also run under the worker)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from jupyter_slurm_ckpt import Checkpointable, DelayedSubmission, JobEnvironment


class Counter(Checkpointable):
    """Counts to ``n`` in ``step_s`` steps; progress survives checkpoints."""

    def __init__(self, step_s: float = 0.02) -> None:
        self.count = 0
        self.step_s = step_s
        self.runs: list[int] = []

    def __call__(self, n: int) -> dict[str, Any]:
        self.runs.append(JobEnvironment().restart_count)
        while self.count < n:
            self.count += 1
            time.sleep(self.step_s)
        return {"count": self.count, "runs": self.runs}


class OnlyDunderCheckpoint:
    """Checkpointable through ``__submitit_checkpoint__`` alone."""

    def __init__(self) -> None:
        self.done_steps = 0
        self.resumed_from: list[int] = []

    def __call__(self, n: int) -> tuple[int, list[int]]:
        self.resumed_from.append(self.done_steps)
        while self.done_steps < n:
            self.done_steps += 1
            time.sleep(0.02)
        return self.done_steps, self.resumed_from

    def __submitit_checkpoint__(self, n: int) -> DelayedSubmission[Any]:
        return DelayedSubmission(self, n)


class NotCheckpointable:
    """A plain callable: restarted from scratch on preemption, stopped on timeout."""

    def __call__(self, seconds: float) -> int:
        time.sleep(seconds)
        return JobEnvironment().restart_count


class Heavy(Checkpointable):
    """A callable whose checkpoint pickle is big, to be killed while it is written."""

    def __init__(self, megabytes: int) -> None:
        self.blob = os.urandom(megabytes * 1024 * 1024)
        self.generation = 0

    def __call__(self) -> int:
        self.generation += 1
        time.sleep(60)
        return self.generation


def spawn_tree(pid_file: str) -> None:
    """Start a child and a grandchild that sleep, record all pids, then sleep."""
    import subprocess
    import sys

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess,sys,time; p=subprocess.Popen(['sleep','300']);"
            "print(p.pid, flush=True); time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    grandchild = child.stdout.readline().strip()
    Path(pid_file).write_text(f"{os.getpid()} {child.pid} {grandchild}")
    time.sleep(300)


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


class SlowToLoad(Checkpointable):
    """Takes ``load_s`` to unpickle (as a large model state would); its ``checkpoint()`` fails
    unless ``__call__`` has run: the pattern of a user checkpoint that saves ``self.model``."""

    def __init__(self, load_s: float, loaded: str = "") -> None:
        self.load_s = load_s
        self.loaded = loaded  # a file made when the load is done (if given)
        self.called = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        time.sleep(state["load_s"])
        self.__dict__.update(state)
        if state.get("loaded"):
            Path(state["loaded"]).touch()

    def __call__(self) -> str:
        self.called = True
        return "done"

    def checkpoint(self) -> Any:
        if not self.called:
            raise RuntimeError("checkpoint() before __call__: nothing to save yet")
        return super().checkpoint()


class SlowToPickle:
    """A result whose pickling takes ``pickle_s``, and that first sends its own process SIGTERM:
    a preemption's termination that lands while the finished result is being written."""

    def __init__(self, pickle_s: float) -> None:
        self.pickle_s = pickle_s

    def __reduce__(self) -> tuple[Any, ...]:
        if self.pickle_s:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(self.pickle_s)
        return (SlowToPickle, (0.0,))


def slow_to_pickle(pickle_s: float) -> SlowToPickle:
    """Returns a :class:`SlowToPickle`."""
    return SlowToPickle(pickle_s)


def wait_file(path: str) -> str:
    """Wait until ``path`` exists (the test releases the job by creating it)."""
    while not os.path.exists(path):
        time.sleep(0.02)
    return "released"


def node_layout() -> dict[str, Any]:
    """What one task of a multi-node job reads about where it runs (the node layout tests
    compare it between the local backend and Slurm)."""
    from jupyter_slurm_ckpt.helpers import TorchDistributedEnvironment

    env = JobEnvironment()
    torch = TorchDistributedEnvironment()
    visible = [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu]
    return {
        "global_rank": env.global_rank,
        "local_rank": env.local_rank,
        "node": env.node,
        "num_nodes": env.num_nodes,
        "num_tasks": env.num_tasks,
        "hostnames": len(env.hostnames),
        "master_is_first_host": torch.master_addr == env.hostnames[0],
        "torch": {k: v for k, v in torch.variables().items() if not k.startswith("MASTER_")},
        "visible_gpus": visible,
        "own_gpu": torch.own_gpu(),
    }
