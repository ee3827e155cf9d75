"""Pickles of the job folder: a one-line header that records versions, then cloudpickle.

A file holds one line of JSON (format, Python and cloudpickle versions: readable by any Python,
so a payload written under other versions is reported with both instead of failing
cryptically), then the cloudpickle stream of the object, protocol 5. Both directions stream:
the pickler writes into the file as it goes, and large buffers (bytes, numpy arrays, anything
that pickles a ``PickleBuffer``) go from their own memory to the file in one write; loading
reads each of them straight into the memory of the object it becomes. torch storages are
pickled the same way (see :mod:`.tensors`; CPU memory as it is, device memory through one
bounded host buffer). Writing or loading a state of several GB therefore needs no memory
beyond the state itself.

Files of the first format (``jupyter_slurm_ckpt/1``: the cloudpickle bytes inside a pickled
dict) still load. A job array's elements share one file (``array_payload`` writes it; its
header's format is ``array_format``): each element's file name is a hard link to it, and
:func:`load` reads the element the job's id names.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import types
from collections import ChainMap
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import cloudpickle

from . import tensors
from .array_format import ARRAY_FORMAT, read_element
from .errors import PayloadError
from .files import PendingFile, check_folder_is_safe, link_or_copy
from .paths import JobPaths, array_index

FORMAT = "jupyter_slurm_ckpt/2"
_ENVELOPE_FORMAT = "jupyter_slurm_ckpt/1"  # loaded, no longer written
PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
#: Protocol 5 pickles large buffers as they are (no copy into the stream, none when loading).
PROTOCOL = 5
_HEADER_MAX_BYTES = 4096
MB = 1024**2
#: A spooled payload waits in memory up to this size, then in an unnamed file: an open file
#: for each element of a large job array would run out of file descriptors.
SPOOL_MEMORY_BYTES = 8 * MB


def format_size(size: int) -> str:
    """2.0 GB, 1.5 MB, 12.0 KB (binary units, as the limits are given)."""
    if size >= 1024 * MB:
        return f"{size / (1024 * MB):.1f} GB"
    if size >= MB:
        return f"{size / MB:.1f} MB"
    return f"{size / 1024:.1f} KB"


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
    """cloudpickle's pickler, except that code objects keep their file name and torch storages
    are written from their own memory (``copy_data=False``: only counted, see
    :func:`tensors.reducers`)."""

    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)

    def __init__(self, file: Any, *, copy_data: bool = True) -> None:
        storages = tensors.reducers(copy_data)
        if storages:  # read by the pickler's __init__: set before it
            self.dispatch_table = ChainMap(storages, type(self).dispatch_table)
        super().__init__(file, protocol=PROTOCOL)


class PayloadTooLargeError(ValueError):
    """A payload is larger than the limit; ``size`` is its whole size, counted to the end."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def header() -> bytes:
    """The first line of every file written here: format and versions, as JSON."""
    fields = {"format": FORMAT, "python": PYTHON_VERSION, "cloudpickle": cloudpickle.__version__}
    return json.dumps(fields).encode() + b"\n"


class _Sink:
    """What the pickler writes to: counts every byte, and passes them on up to ``max_bytes``.

    Past the limit nothing more is written but the counting goes on, so that the refusal can
    say how big the payload is; the pickler hands large buffers over as they are, so counting
    them costs nothing, whatever their size.
    """

    def __init__(self, out: Any = None, max_bytes: int | None = None) -> None:
        self.out = out
        self.max_bytes = max_bytes
        self.size = 0

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.size += size
        if self.out is not None and not self.over_limit:
            self.out.write(data)
        return size

    @property
    def over_limit(self) -> bool:
        return self.max_bytes is not None and self.size > self.max_bytes


def _write(obj: Any, sink: _Sink) -> int:
    sink.write(header())
    _Pickler(sink, copy_data=sink.out is not None).dump(obj)
    if sink.over_limit:
        assert sink.max_bytes is not None
        raise PayloadTooLargeError(sink.size, sink.max_bytes)
    return sink.size


def pickled_size(obj: Any) -> int:
    """Size of ``obj``'s cloudpickle stream, measured without building it.

    Pickles ``obj`` exactly as :func:`dump` does, so it fails the same way, but into a
    counter: a 2 GB payload is measured (and refused) without 2 GB of memory.
    """
    sink = _Sink()
    _Pickler(sink, copy_data=False).dump(obj)
    return sink.size


def serialized_size(obj: Any) -> int:
    """The size of the file :func:`dump` writes for ``obj``, measured without building it."""
    return _write(obj, _Sink())


def serialize(obj: Any) -> bytes:
    """The bytes of :func:`dump`'s file, in memory (for small objects: tests, messages)."""
    buffer = io.BytesIO()
    _write(obj, _Sink(buffer))
    return buffer.getvalue()


def dump(obj: Any, path: Path, *, durable: bool = True) -> int:
    """Pickle ``obj`` into ``path`` atomically, streaming; returns the number of bytes written.

    The pickle goes straight into a hidden temporary beside ``path`` (large buffers from their
    own memory), renamed onto ``path`` once complete. ``durable`` fsyncs before the rename:
    checkpoints and results must survive a node crash.

    Raises
    ------
    WriteError
        (an ``OSError``) When the filesystem fails; any other exception comes from pickling
        ``obj``. Either way ``path`` is untouched.
    """
    pending = PendingFile.beside(path)
    try:
        size = _write(obj, _Sink(pending))
    except BaseException:
        pending.discard()
        raise
    pending.commit(path, durable=durable)
    return size


class Pickled:
    """An object pickled (once) before its file has a name: :meth:`place` gives it one.

    Small payloads wait in memory, large ones in an unnamed file of the job folder's
    filesystem (see ``PendingFile.unnamed``): placing them is a rename, not a copy.
    """

    def __init__(self, obj: Any, folder: Path) -> None:
        self.obj = obj  # what was pickled (the debug backend runs it in this process)
        self.size = 0
        #: The job whose last checkpoint this payload is, when it is submitted again.
        self.origin: str | None = None
        self._folder = folder
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: PendingFile | None = None

    def write(self, data: Any) -> int:
        """The pickler's output: memory first, spilled into the unnamed file when large."""
        size = memoryview(data).nbytes
        if self._memory is not None and self.size + size > SPOOL_MEMORY_BYTES:
            self._file = PendingFile.unnamed(self._folder)
            self._file.write(self._memory.getbuffer())
            self._memory = None
        if self._memory is not None:
            self._memory.write(data)
        else:
            assert self._file is not None
            self._file.write(data)
        self.size += size
        return size

    def place(self, path: Path, *, durable: bool = False) -> None:
        """Give the pickle its file ``path``, atomically (see ``PendingFile.commit``)."""
        if self._memory is not None:
            self._file = PendingFile.beside(path)
            self._file.write(self._memory.getbuffer())
            self._memory = None
        assert self._file is not None
        self._file.commit(path, durable=durable)
        self._file = None

    def copy_to(
        self, write: Callable[[memoryview], Any], copy_range: Callable[[int, int, int], Any]
    ) -> None:
        """Hand the bytes of a pickle not yet placed on: ``write(view)`` for one in memory,
        ``copy_range(fd, 0, size)`` for one in its file (copied without reading it into
        memory: the SSH backend sends it to the cluster this way)."""
        if self._memory is not None:
            write(self._memory.getbuffer())
        else:
            assert self._file is not None
            copy_range(self._file.fileno(), 0, self.size)

    def discard(self) -> None:
        """Drop the pickle if it has not been placed (nothing happens after :meth:`place`)."""
        self._memory = None
        if self._file is not None:
            self._file.discard()
            self._file = None


class CheckpointPayload(Pickled):
    """A job's payload file as it is on disk (its last checkpoint), submitted again as a new
    job: placed by a hard link (see ``files.link_or_copy``), never loaded into memory."""

    def __init__(self, source: Path, origin: str) -> None:
        super().__init__(None, Path(source).parent)
        check_folder_is_safe(self._folder)
        self.source = Path(source)
        self.size = self.source.stat().st_size
        self.origin = origin
        self._memory = None

    def place(self, path: Path, *, durable: bool = False) -> None:
        """Give the new job the same payload file."""
        link_or_copy(self.source, path)

    def discard(self) -> None:
        """The source belongs to the job it comes from: nothing to drop."""


def spool(obj: Any, folder: Path, max_bytes: int | None = None) -> Pickled:
    """Pickle ``obj`` once, for a file of ``folder`` whose name is not known yet.

    Nothing is visible in ``folder`` until :meth:`Pickled.place`; ``folder`` need not exist.

    Raises
    ------
    PayloadTooLargeError
        When the pickle is larger than ``max_bytes`` (measured to the end; only the first
        ``max_bytes`` were written, and dropped).
    JobFolderError
        When no file can be made for ``folder`` (it is a file, not ours, not writable).
    WriteError
        When the filesystem fails; any other exception comes from pickling ``obj``.
    """
    pickled = Pickled(obj, folder)
    try:
        _write(obj, _Sink(pickled, max_bytes))
    except BaseException:
        pickled.discard()
        raise
    return pickled


def load(path: Path, element: int | None = None) -> Any:
    """Load a payload written by :func:`dump` (or :meth:`Pickled.place`), streaming.

    ``element``: which element to load from a job array's shared file (see
    ``array_format``); by default the one the file's name says (``<array>_<i>_submitted.pkl``).
    Any other file holds one payload, and ``element`` is ignored.

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
        if element is None:
            element = array_index(JobPaths.job_id_of(path.name, JobPaths.PAYLOAD_SUFFIX) or "")
        with open(path, "rb") as stream:
            return _read(stream, origin=str(path), element=element)
    except FileNotFoundError:
        raise PayloadError(f"{path} does not exist") from None


def deserialize(data: bytes, origin: str = "payload") -> Any:
    """Inverse of :func:`serialize`; ``origin`` names the file in error messages."""
    return _read(io.BytesIO(data), origin)


def _read(stream: IO[bytes], origin: str, element: int | None = None) -> Any:
    first_line = stream.readline(_HEADER_MAX_BYTES)
    if not first_line.startswith(b"{"):  # the first format's envelope, or not ours at all
        return _read_envelope(first_line + stream.read(), origin)
    try:
        fields = json.loads(first_line)
        if not isinstance(fields, dict):
            raise ValueError("the header is not a JSON object")
    except ValueError as error:
        raise _not_ours(origin, error) from None
    if fields.get("format") not in (FORMAT, ARRAY_FORMAT):
        raise PayloadError(f"{origin} is not a jupyter_slurm_ckpt pickle (unknown format)")
    _check_versions(fields, origin)
    try:
        if fields["format"] == ARRAY_FORMAT:
            return read_element(stream, fields, origin, element)
        return pickle.load(stream)
    except (EOFError, pickle.UnpicklingError, struct.error) as error:  # ends early, or garbage
        raise _not_ours(origin, error) from None
    except PayloadError:
        raise
    except Exception as error:
        raise _cannot_unpickle(origin, error) from error


def _read_envelope(data: bytes, origin: str) -> Any:
    try:
        envelope = pickle.loads(data)
    except Exception as error:  # truncated, garbage, or not ours
        raise _not_ours(origin, error) from None
    if not isinstance(envelope, dict) or envelope.get("format") != _ENVELOPE_FORMAT:
        raise PayloadError(f"{origin} is not a jupyter_slurm_ckpt pickle (unknown format)")
    _check_versions(envelope, origin)
    try:
        return cloudpickle.loads(envelope["body"])
    except Exception as error:
        raise _cannot_unpickle(origin, error) from error


def _not_ours(origin: str, error: Exception) -> PayloadError:
    return PayloadError(
        f"{origin} is truncated or is not a jupyter_slurm_ckpt pickle "
        f"({type(error).__name__}: {error})"
    )


def _cannot_unpickle(origin: str, error: Exception) -> PayloadError:
    return PayloadError(
        f"{origin} could not be unpickled ({type(error).__name__}: {error}); "
        "is every module it needs importable here?"
    )


def _check_versions(fields: dict[Any, Any], origin: str) -> None:
    written = (str(fields.get("python")), str(fields.get("cloudpickle")))
    here = (PYTHON_VERSION, cloudpickle.__version__)
    if _python_series(written[0]) != _python_series(here[0]) or written[1] != here[1]:
        raise PayloadError(
            f"{origin} was written by Python {written[0]} with cloudpickle {written[1]}, "
            f"but this is Python {here[0]} with cloudpickle {here[1]}: "
            "run the job with the same Python environment that submitted it"
        )
