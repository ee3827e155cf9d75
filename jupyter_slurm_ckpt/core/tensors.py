"""torch storages in payloads: written from their own memory, read into storages of their own.

torch pickles a storage by ``torch.save``-ing it into ``bytes``: a full copy, which the pickle's
memo keeps until the dump ends, and another one when it loads. The payload's pickler reduces
storages with a :class:`StorageReducer` instead (torch's tensor reducers, which keep dtypes,
shapes, strides, views, ``requires_grad`` and ``nn.Parameter``, refer to these storages):

- a CPU storage is a protocol-5 ``PickleBuffer`` over its own memory: the pickler writes it to
  the file straight from there, and the unpickler reads it into a new ``bytearray``, which
  becomes the memory of the loaded storage (nothing staged, nothing copied);
- a storage on a device (``cuda:k``) is copied to the file chunk by chunk through one host
  buffer of at most :data:`STAGING_BYTES` (pinned for CUDA), and loaded chunk by chunk onto the
  device :mod:`.devices` maps it to, each chunk's host memory released once copied.

A storage shared by several tensors is pickled once (the pickle's memo) and shared again when
loaded. torch is never imported here to write: a payload that holds a tensor was made by a
process that has torch loaded already, found in ``sys.modules``; a load imports it when the
first storage is rebuilt. The rebuilding functions below are named in payload files: keep
their names and arguments.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import sys
from collections.abc import Callable
from pickle import PickleBuffer
from typing import Any

from . import devices

PROTOCOL = 5
#: A storage on a device passes to the file through a host buffer of at most this size.
STAGING_BYTES = 32 * 1024**2


def reducers(copy_data: bool = True) -> dict[type, Callable[[Any], Any]]:
    """Dispatch-table entries for torch's storage types (none while torch is not loaded).

    ``copy_data=False`` is for a pickler that only counts bytes: a device storage's chunks are
    then counted without being copied to the host.
    """
    torch: Any = sys.modules.get("torch")
    if not hasattr(getattr(torch, "storage", None), "TypedStorage"):  # none, or half imported
        return {}
    reducer = StorageReducer(copy_data)
    return {
        torch.Tensor: reducer.tensor,
        torch.UntypedStorage: reducer.untyped,
        torch.storage.TypedStorage: reducer.typed,
    }


def _host_memory(storage: Any, nbytes: int) -> Any:
    """The first ``nbytes`` of a CPU storage, as a writable buffer over its memory (no copy)."""
    return (ctypes.c_char * nbytes).from_address(storage.data_ptr())


def _torch() -> Any:
    return importlib.import_module("torch")


def _as_bytes(storage: Any) -> Any:
    """A uint8 tensor over all of ``storage`` (on its device)."""
    torch = _torch()
    return torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)


def is_staged(device: Any) -> bool:
    """Whether a storage on ``device`` goes through the host buffer (every device but the CPU,
    whose memory is written as it is, and ``meta``, which has none)."""
    return str(device.type) not in ("cpu", "meta")


class StorageReducer:
    """Reduces the storages of one pickling (see the module's description)."""

    def __init__(self, copy_data: bool = True) -> None:
        self._copy_data = copy_data
        #: The first Python object pickled for each storage (kept alive: ids stay unique).
        self._first: dict[int, Any] = {}
        self._staging: Any = None

    def tensor(self, tensor: Any) -> Any:
        """A plain tensor, as torch reduces it; except that the dtypes torch rebuilds from an
        untyped storage (float8, uint16...) get it wrapped as torch's loader would give it (a
        bare untyped storage cannot be rebuilt into them: torch's own pickling fails there)."""
        torch = _torch()
        reduced = tensor.__reduce_ex__(PROTOCOL)
        if reduced[0] is not torch._utils._rebuild_tensor_v3:
            return reduced
        untyped, *rest = reduced[1]
        return (reduced[0], (typed_storage(untyped, torch.uint8), *rest), *reduced[2:])

    def typed(self, storage: Any) -> tuple[Any, ...]:
        """A ``TypedStorage``: its untyped storage and dtype."""
        return (typed_storage, (storage._untyped_storage, storage.dtype))

    def untyped(self, storage: Any) -> tuple[Any, ...]:
        """An ``UntypedStorage``: its bytes, and for a device storage where it was."""
        first = self._first.setdefault(storage._cdata, storage)
        if first is not storage:  # another Python object for a storage pickled already
            return (same_storage, (first,))
        nbytes = storage.nbytes()
        device = storage.device
        if device.type == "meta":
            return (meta_storage, (nbytes,))
        if not is_staged(device):
            return (cpu_storage, (PickleBuffer(_host_memory(storage, nbytes)),))
        index = device.index if device.index is not None else 0
        target = _DeviceTarget(nbytes, device.type, index, devices.current_index(device.type))
        chunks = tuple(
            _Chunk(self, storage, target, start, min(start + STAGING_BYTES, nbytes))
            for start in range(0, nbytes, STAGING_BYTES)
        )
        return (device_storage, (target, chunks))

    def stage(self, storage: Any, start: int, stop: int) -> PickleBuffer:
        """Bytes ``start:stop`` of a device storage, copied into the host buffer (reused: the
        pickler writes them out before the next chunk is staged)."""
        torch = _torch()
        size = stop - start
        if self._staging is None or self._staging.nbytes() < size:
            pinned = storage.device.type == "cuda"
            buffer = torch.empty(STAGING_BYTES, dtype=torch.uint8, pin_memory=pinned)
            self._staging = buffer.untyped_storage()
        if self._copy_data:
            _as_bytes(self._staging)[:size].copy_(_as_bytes(storage)[start:stop])
        return PickleBuffer(_host_memory(self._staging, size))


class _DeviceTarget:
    """Pickled as the empty storage that a device storage's chunks are loaded into."""

    def __init__(self, nbytes: int, device_type: str, index: int, writer_index: int) -> None:
        self.fields = (nbytes, device_type, index, writer_index)

    def __reduce__(self) -> tuple[Any, ...]:
        return (device_target, self.fields)


class _Chunk:
    """Pickled as the copy of one chunk into its :class:`_DeviceTarget`."""

    def __init__(
        self, reducer: StorageReducer, storage: Any, target: _DeviceTarget, start: int, stop: int
    ) -> None:
        self.reducer, self.storage, self.target = reducer, storage, target
        self.start, self.stop = start, stop

    def __reduce__(self) -> tuple[Any, ...]:
        # Staged now, while the pickler reaches this chunk: it writes the bytes at once.
        memory = self.reducer.stage(self.storage, self.start, self.stop)
        return (fill_chunk, (self.target, self.start, memory))


# -- rebuilding (named in payload files) ---------------------------------------------------------


def cpu_storage(memory: bytearray) -> Any:
    """A CPU storage whose memory is ``memory`` (read there by the unpickler: no copy)."""
    torch = _torch()
    if not len(memory):
        return torch.UntypedStorage(0)
    return torch.frombuffer(memory, dtype=torch.uint8).untyped_storage()


def typed_storage(untyped: Any, dtype: Any) -> Any:
    """The ``TypedStorage`` of ``dtype`` over ``untyped`` (what torch's tensor reducers use)."""
    return _torch().storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def same_storage(storage: Any) -> Any:
    """The storage itself (a second Python object for it was pickled as a reference)."""
    return storage


def meta_storage(nbytes: int) -> Any:
    """A storage on the ``meta`` device (no data)."""
    return _torch().UntypedStorage(nbytes, device="meta")


def device_target(nbytes: int, device_type: str, index: int, writer_index: int) -> Any:
    """The empty storage a device storage is loaded into, on the device it maps to here."""
    device = devices.load_device(device_type, index, writer_index)
    return _torch().UntypedStorage(nbytes, device=device)


def fill_chunk(storage: Any, start: int, memory: bytearray) -> None:
    """Copy one chunk into ``storage`` at ``start``, then free the chunk's host memory."""
    if len(memory):
        torch = _torch()
        source = torch.frombuffer(memory, dtype=torch.uint8)
        _as_bytes(storage)[start : start + len(memory)].copy_(source)
        del source  # releases the bytearray, which can then shrink
    with contextlib.suppress(BufferError):
        del memory[:]  # the unpickler's memo keeps the bytearray: keep it empty


def device_storage(storage: Any, filled: tuple[None, ...]) -> Any:
    """The storage, once its chunks are in (``filled``: what :func:`fill_chunk` returned)."""
    return storage
