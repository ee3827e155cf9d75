"""The torch states of ``bench_payload.py``: a model and its optimizer, written and loaded by us
and by ``torch.save``/``torch.load``.

A state is ``KIND:MIB``: ``sgd:512`` is ``8 x nn.Linear(4096, 4096, bias=False)`` (512 MiB of
float32 parameters) with plain SGD (no state of its own); ``adam:1536`` is the same model with
Adam after one step (its two moments: 1536 MiB in all). Ours writes the ``Checkpointable``
that holds both (what a job's checkpoint holds) with ``payload.dump(..., durable=True)``;
torch writes their ``state_dict()`` with ``torch.save`` into an open file, then ``fsync``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from jupyter_slurm_ckpt import Checkpointable, DelayedSubmission
from jupyter_slurm_ckpt.core import payload

MB = 1024**2
LAYER_BYTES = 4096 * 4096 * 4  # one nn.Linear(4096, 4096, bias=False): 64 MiB
METHODS = ("ours", "torch.save+fsync")


class Trainer(Checkpointable):
    """What a training job's checkpoint holds: its model and its optimizer."""

    def __init__(self, model: Any, optimizer: Any) -> None:
        self.model = model
        self.optimizer = optimizer

    def __call__(self) -> int:
        return len(self.optimizer.state)


def parse(spec: str) -> tuple[str, int]:
    """``"adam:1536"`` -> ``("adam", 1536 MiB in bytes)``."""
    kind, _, mib = spec.partition(":")
    if kind not in ("sgd", "adam") or not mib.isdigit():
        raise SystemExit(f"a torch state is sgd:MIB or adam:MIB, not {spec!r}")
    return kind, int(mib) * MB


def build(kind: str, size: int) -> Trainer:
    """A state of ``size`` bytes in all: the model, and Adam's moments after one step."""
    layers = size // LAYER_BYTES // (3 if kind == "adam" else 1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096, bias=False) for _ in range(layers)])
    if kind == "sgd":
        return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for parameter in model.parameters():
        parameter.grad = torch.ones_like(parameter)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return Trainer(model, optimizer)


def write(method: str, trainer: Trainer, path: Path) -> None:
    if method == "ours":
        payload.dump(DelayedSubmission(trainer), path, durable=True)
        return
    state = {"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict()}
    with open(path, "wb") as stream:
        torch.save(state, stream)
        stream.flush()
        os.fsync(stream.fileno())


def load(method: str, path: Path) -> int:
    """Load the file; returns how many bytes of tensors it held."""
    if method == "ours":
        trainer = payload.load(path).function
        tensors = [*trainer.model.state_dict().values(), *_moments(trainer.optimizer.state)]
    else:
        state = torch.load(path)
        tensors = [*state["model"].values(), *_moments(state["optimizer"]["state"])]
    return sum(tensor.nbytes for tensor in tensors)


def _moments(state: Any) -> list[Any]:
    return [v for s in state.values() for v in s.values() if v.dim() > 0]
