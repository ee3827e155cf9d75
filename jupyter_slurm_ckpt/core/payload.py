"""Pickles of the job folder: cloudpickle inside a small envelope that records versions.

The envelope is a plain pickle of a dict (readable by any Python 3), so a payload written under
another Python or cloudpickle is reported with both versions instead of failing cryptically.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from collections import ChainMap
from pathlib import Path
from typing import Any

import cloudpickle

from .errors import PayloadError
from .files import atomic_write_bytes, check_folder_is_safe

FORMAT = "jupyter_slurm_ckpt/1"
PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])


def _python_series(version: str) -> str:
    return ".".join(version.split(".")[:2])


_DYNAMIC_CODE = "<dynamic-code>"


def _code_with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    return code.replace(co_filename=filename)


def _reduce_code(code: types.CodeType) -> Any:
    # cloudpickle renames every code object's file to <dynamic-code>; keeping the real name
    # lets tracebacks inside the job show the source lines of code defined in a notebook
    # cell (the magic writes the cell to a file of the job folder under that name).
    if code.co_filename == _DYNAMIC_CODE:
        return _CLOUDPICKLE_CODE_REDUCE(code)
    return _code_with_filename, (code.replace(co_filename=_DYNAMIC_CODE), code.co_filename)


_CLOUDPICKLE_CODE_REDUCE = cloudpickle.Pickler.dispatch_table[types.CodeType]


class _Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, except that code objects keep their file name."""

    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def serialize(obj: Any) -> bytes:
    """Cloudpickle ``obj`` (by value for ``__main__`` and registered modules) in the envelope."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return _envelope(buffer.getvalue())


class _ByteCounter:
    """A write-only file that keeps nothing but the number of bytes written to it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: Any) -> int:
        # The pickler hands large bytes and buffers over as they are (no copy): counting them
        # costs nothing, whatever their size.
        size = memoryview(data).nbytes
        self.size += size
        return size


def pickled_size(obj: Any) -> int:
    """Size of ``obj``'s cloudpickle body, measured without building it.

    Pickles ``obj`` exactly as :func:`serialize` does, so it fails the same way, but into a
    counter: a 2 GB payload is measured (and refused) without 2 GB of memory.
    """
    counter = _ByteCounter()
    _Pickler(counter, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return counter.size


def serialized_size(obj: Any) -> int:
    """``len(serialize(obj))``, measured without building it (see :func:`pickled_size`)."""
    body = pickled_size(obj)
    envelope = len(_envelope(b""))
    # The body's length header grows from 1 byte (empty) to 4 or 8 bytes.
    return envelope + body + (0 if body < 256 else 3 if body < 2**32 else 7)


def _envelope(body: bytes) -> bytes:
    envelope = {
        "format": FORMAT,
        "python": PYTHON_VERSION,
        "cloudpickle": cloudpickle.__version__,
        "body": body,
    }
    return pickle.dumps(envelope, protocol=4)


def dump(obj: Any, path: Path, *, durable: bool = True) -> int:
    """Serialize ``obj`` to ``path`` atomically; returns the number of bytes written.

    ``durable`` fsyncs before the rename: checkpoints and results must survive a node crash.
    """
    data = serialize(obj)
    atomic_write_bytes(path, data, durable=durable)
    return len(data)


def deserialize(data: bytes, origin: str = "payload") -> Any:
    """Inverse of :func:`serialize`; ``origin`` names the file in error messages."""
    try:
        envelope = pickle.loads(data)
    except Exception as error:  # truncated, garbage, or not ours
        raise PayloadError(
            f"{origin} is truncated or is not a jupyter_slurm_ckpt pickle "
            f"({type(error).__name__}: {error})"
        ) from None
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise PayloadError(f"{origin} is not a jupyter_slurm_ckpt pickle (unknown format)")
    written = (str(envelope.get("python")), str(envelope.get("cloudpickle")))
    here = (PYTHON_VERSION, cloudpickle.__version__)
    if _python_series(written[0]) != _python_series(here[0]) or written[1] != here[1]:
        raise PayloadError(
            f"{origin} was written by Python {written[0]} with cloudpickle {written[1]}, "
            f"but this is Python {here[0]} with cloudpickle {here[1]}: "
            "run the job with the same Python environment that submitted it"
        )
    try:
        return cloudpickle.loads(envelope["body"])
    except Exception as error:
        raise PayloadError(
            f"{origin} could not be unpickled ({type(error).__name__}: {error}); "
            "is every module it needs importable here?"
        ) from error


def load(path: Path) -> Any:
    """Load a payload written by :func:`dump`, naming ``path`` in every error.

    Raises
    ------
    JobFolderError
        Before anything is read, when the file's folder belongs to another user or others can
        write to it: unpickling runs code, and whoever can write there chooses that code.
    PayloadError
        When the file is missing, truncated, garbage or written by other versions.
    """
    path = Path(path)
    try:
        check_folder_is_safe(path.parent)
        data = path.read_bytes()
    except FileNotFoundError:
        raise PayloadError(f"{path} does not exist") from None
    return deserialize(data, origin=str(path))
