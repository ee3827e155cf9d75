"""Where a tensor saved on a device goes when its payload is loaded: the job's own device.

A requeued run may land on a node whose GPUs have other indices, or on one without a GPU.
Slurm numbers a job's visible GPUs from 0 (``CUDA_VISIBLE_DEVICES``), so a saved index means
"the writer's k-th visible device". :func:`map_device` keeps the writer's layout relative to
its own device: the writer's own device becomes the reader's own, the one after it the one
after the reader's, and so on, wrapping around the devices the reader sees. One GPU per task
(the usual case) therefore loads onto the task's GPU; a rank-0 checkpoint loaded by the rank
on a node's second GPU lands there; a run without any such device gets CPU tensors, with a
warning. The decision is a pure function; :func:`placement` reads what the loading process
has (torch, and its local rank from :class:`JobEnvironment`).
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from typing import Any

from .environment import JobEnvironment

_warned: set[str] = set()


@dataclass(frozen=True)
class Placement:
    """The devices of one type that a process sees, and the one that is its own."""

    visible: int
    own: int = 0


def map_device(device_type: str, saved_index: int, writer_index: int, here: Placement) -> str:
    """The device a storage saved on ``device_type:saved_index`` is loaded onto.

    Parameters
    ----------
    device_type, saved_index
        Where the storage was when it was written (``"cuda"``, 1).
    writer_index
        The writing process's own device then (its current device).
    here
        What the loading process sees (:func:`placement`).

    Returns
    -------
    str
        ``"cuda:k"``, or ``"cpu"`` when no device of that type is visible.
    """
    if device_type == "cpu" or here.visible <= 0:
        return "cpu"
    index = (saved_index - writer_index + here.own) % here.visible
    return f"{device_type}:{index}"


def _torch() -> Any:
    return importlib.import_module("torch")


def _device_module(device_type: str) -> Any:
    module = getattr(_torch(), device_type, None)
    available = getattr(module, "is_available", None)
    return module if available is not None and available() else None


def placement(device_type: str) -> Placement:
    """The devices of ``device_type`` this process sees; its own is ``local rank % visible``
    (one GPU per task: 0; tasks sharing a node's GPUs: each its own)."""
    module = _device_module(device_type)
    visible = int(module.device_count()) if module is not None else 0
    own = JobEnvironment().local_rank % visible if visible else 0
    return Placement(visible, own)


def current_index(device_type: str) -> int:
    """The writing process's own device of ``device_type`` (torch's current device)."""
    module = _device_module(device_type)
    index = module.current_device() if hasattr(module, "current_device") else 0
    return index if isinstance(index, int) else 0  # torch.cpu's is "cpu"


def load_device(device_type: str, saved_index: int, writer_index: int) -> str:
    """:func:`map_device` for this process, warning (once per device type) when the tensors
    saved on a device land on the CPU."""
    target = map_device(device_type, saved_index, writer_index, placement(device_type))
    if target == "cpu" and device_type != "cpu" and device_type not in _warned:
        _warned.add(device_type)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        warnings.warn(
            f"this payload holds tensors saved on {device_type}:{saved_index}, but no "
            f"{device_type} device is visible here{seen}: they are loaded on the CPU; ask for "
            "a GPU (--gpus-per-node) to resume on one, or move them with .to(device)",
            RuntimeWarning,
            stacklevel=2,
        )
    return target
