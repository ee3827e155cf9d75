"""Callables the Slurm tests submit. Pickled by value (see conftest): the job needs no tests/."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from jupyter_slurm_ckpt import Checkpointable, JobEnvironment


class Gated(Checkpointable):
    """Counts until its gate file exists (and at least ``minimum`` steps); survives requeues.

    The test opens the gate when it has interrupted the job as often as it wants, so a loaded
    machine can never make the job finish before the interrupts it is tested with.
    """

    def __init__(self, step_s: float = 0.05, verbose: bool = False) -> None:
        self.count = 0
        self.step_s = step_s
        self.verbose = verbose
        self.runs: list[int] = []
        self.resumed_from: list[int] = []

    def __call__(self, gate: str, minimum: int = 1, ready: str = "") -> dict[str, Any]:
        self.runs.append(JobEnvironment().restart_count)
        self.resumed_from.append(self.count)
        if ready:  # the run's bookkeeping is done: an interrupt from now on is seen in it
            print(ready, flush=True)
        while self.count < minimum or not Path(gate).exists():
            self.count += 1
            if self.verbose:
                print(f"step {self.count}", flush=True)
            time.sleep(self.step_s)
        return {"count": self.count, "runs": self.runs, "resumed_from": self.resumed_from}


def square_or_fail(x: int, bad: int) -> int:
    """``x * x``, except for ``bad``, which raises."""
    if x == bad:
        raise ValueError(f"element {x} fails on purpose")
    return x * x


def die_without_result(code: int) -> None:
    """Leave the process at once: no result file, no event (as a segfault or OOM kill would)."""
    os._exit(code)


def whoami() -> dict[str, Any]:
    """What the job sees of itself (multi-task: one result per task)."""
    env = JobEnvironment()
    return {
        "rank": env.global_rank,
        "num_tasks": env.num_tasks,
        "job_id": env.job_id,
        "cluster": env.cluster,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def gpu_view() -> dict[str, str | None]:
    """The GPUs Slurm gave the job, as a CUDA program would see them."""
    return {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS_ON_NODE")}


def rendezvous(address: str, port: int, rank: int, message: str, timeout_s: float = 60.0) -> str:
    """Rank 0 listens on ``port``, rank 1 connects to ``address``; each sends ``message`` and
    returns the other's (a plain TCP exchange, as torch.distributed's env:// would make)."""
    deadline = time.monotonic() + timeout_s
    if rank == 0:
        with socket.create_server(("", port), reuse_port=True) as server:
            server.settimeout(timeout_s)
            connection, _ = server.accept()
    else:
        while True:
            try:
                connection = socket.create_connection((address, port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    with connection:
        connection.sendall(message.encode() + b"\n")
        return connection.makefile().readline().strip()


class NodeReport(Gated):
    """A ``Gated`` counter that also reports, per rank, its node and its peer's node (reached
    through ``helpers.TorchDistributedEnvironment``'s MASTER_ADDR/MASTER_PORT). Each rank
    prints ``ready <run>`` once it has met its peer and counts."""

    def __call__(self, gate: str, minimum: int = 1) -> dict[str, Any]:
        from jupyter_slurm_ckpt.helpers import TorchDistributedEnvironment

        dist = TorchDistributedEnvironment().export()
        node = os.environ.get("SLURMD_NODENAME", "?")
        peer = rendezvous(dist.master_addr, dist.master_port, dist.rank, node)
        self.verbose = False
        result = super().__call__(gate, minimum, ready=f"ready {JobEnvironment().restart_count}")
        result.update(
            rank=dist.rank,
            world_size=dist.world_size,
            node=node,
            node_id=int(os.environ.get("SLURM_NODEID", "-1")),
            master=f"{dist.master_addr}:{dist.master_port}",
            peer=peer,
        )
        return result


class SlowToCheckpoint(Gated):
    """A ``Gated`` counter whose ``checkpoint()`` says it started (``<folder>/checkpointing``)
    and takes ``checkpoint_s`` seconds, or lasts until ``<folder>/may end`` exists."""

    def __init__(self, folder: str, checkpoint_s: float = 0.0) -> None:
        super().__init__()
        self.folder = folder
        self.checkpoint_s = checkpoint_s

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        Path(self.folder, "checkpointing").write_text(str(time.time()))
        deadline = time.monotonic() + self.checkpoint_s
        while not Path(self.folder, "may end").exists():
            if self.checkpoint_s and time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        return super().checkpoint(*args, **kwargs)


def wait_for_gate(gate: str) -> str:
    """A plain function (no checkpoint method) that waits for its gate file."""
    while not Path(gate).exists():
        time.sleep(0.05)
    return "done"


def cpu_view() -> dict[str, Any]:
    """The CPUs this task may run on, and where it runs."""
    env = JobEnvironment()
    return {
        "rank": env.global_rank,
        "node": os.environ.get("SLURMD_NODENAME"),
        "cpus": sorted(os.sched_getaffinity(0)),
    }


def memory_limit() -> int | None:
    """The memory limit of this process (cgroup v1: the smallest of its memory cgroup's and
    their parents'), None where there is none."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = Path(f"/sys/fs/cgroup/memory{path}")
            limits = [int((level / "memory.limit_in_bytes").read_text())
                      for level in (folder, *folder.parents)
                      if (level / "memory.limit_in_bytes").exists()]
            smallest = min(limits, default=2**63)
            return smallest if smallest < 2**62 else None
    return None


class BigState(Gated):
    """A ``Gated`` counter that holds ``mb`` MB of numpy state from its first run on (made
    once: a resumed run has it from the checkpoint) and reports its memory limit."""

    def __init__(self, mb: int) -> None:
        super().__init__()
        self.mb = mb
        self.state: Any = None
        self.made_in_run: int | None = None

    def __call__(self, gate: str, minimum: int = 1, ready: str = "") -> dict[str, Any]:
        import numpy

        if self.state is None:
            self.state = numpy.ones(self.mb * 2**20 // 8)  # written: resident, not lazy
            self.made_in_run = JobEnvironment().restart_count
        result = super().__call__(gate, minimum, ready)
        result.update(
            made_in_run=self.made_in_run, state_mb=self.state.nbytes // 2**20,
            limit=memory_limit(),
        )
        return result


class SlowToPickle(Gated):
    """A ``Gated`` job whose state takes ``pickle_s`` seconds to pickle once it has counted (a
    large model, say): its checkpoint outlives a short KillWait."""

    def __init__(self, pickle_s: float) -> None:
        super().__init__()
        self.pickle_s = pickle_s

    def __getstate__(self) -> dict[str, Any]:
        if self.count:
            time.sleep(self.pickle_s)
        return dict(self.__dict__)
