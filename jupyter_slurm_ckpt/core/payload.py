"""Pickles of the job folder: cloudpickle inside a small envelope that records versions.

The envelope is a plain pickle of a dict (readable by any Python 3), so a payload written under
another Python or cloudpickle is reported with both versions instead of failing cryptically.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from .errors import PayloadError
from .files import atomic_write_bytes

FORMAT = "jupyter_slurm_ckpt/1"
PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])


def _python_series(version: str) -> str:
    return ".".join(version.split(".")[:2])


def serialize(obj: Any) -> bytes:
    """Cloudpickle ``obj`` (by value for ``__main__`` and registered modules) in the envelope."""
    body = cloudpickle.dumps(obj, protocol=pickle.DEFAULT_PROTOCOL)
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
    """Load a payload written by :func:`dump`, naming ``path`` in every error."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise PayloadError(f"{path} does not exist") from None
    return deserialize(data, origin=str(path))
