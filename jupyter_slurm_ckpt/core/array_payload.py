"""The files a job array's elements share: one for their payloads, one for their description.

``map_array(fn, xs)`` submits one call of ``fn`` per item. Pickled one by one, ``fn`` (and all
it drags along: a notebook class by value, its globals) would be pickled once per element, and
each element would get a file of its own: a new file (an inode) is what costs most in a
submission, 70 to 110 µs here, where a hard link to an existing file costs 5 µs.

Here the function the elements share is pickled once, then each element's
``DelayedSubmission`` as a continuation of that pickle (the pickler's memo kept), all into one
file that has no name yet (its layout: ``array_format``). Each element's
``<id>_submitted.pkl`` is a hard link to it, and ``payload.load`` reads the shared part, then
the element's own, so that what an element's arguments share with the function is shared in
the job too, as when both are pickled together. This is safe for every submission:

- each element's part continues the memo the shared part left, never another element's, so
  an element loads alone (the elements of ``map_array(fn, [cfg] * n)`` each get their copy of
  ``cfg``, as one by one);
- the file is complete before the first name is given to it, and is never written again: a
  checkpoint replaces the element's name by a new file (rename), the others keep theirs;
- ``job.resubmit()`` of an element that never checkpointed copies out its two parts
  (:func:`resubmittable`), never unpickling them (the Jupyter server may run another Python).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import payload
from .array_format import ARRAY_FORMAT, ARRAY_MAGIC, ARRAY_OFFSET, ARRAY_TRAILER
from .files import PendingFile, check_folder_is_safe
from .info import JobInfo
from .payload import PayloadTooLargeError, Pickled

#: Writes are gathered up to this size before they reach the file (an element's part is often
#: a few dozen bytes); larger ones go from their own memory to the file.
_BUFFER_BYTES = 1024 * 1024
_COPY_CHUNK = 1024 * 1024


@dataclass
class ArrayDescription:
    """A job array's description (``<id>_job.json``), written once into a file that each
    element's description is a hard link to (``JobInfo.read`` gives each its own id)."""

    info: JobInfo
    file: PendingFile

    @classmethod
    def write(cls, info: JobInfo, folder: Path) -> ArrayDescription:
        """``info`` (the array's id, its ``array_size``) in a file for ``folder``, unnamed."""
        file = PendingFile.unnamed(folder)
        try:
            file.write(info.text().encode())
        except BaseException:
            file.discard()
            raise
        return cls(info, file)

    def of(self, job_id: str) -> JobInfo:
        """The description of the element ``job_id``, as ``JobInfo.read`` reads it."""
        return dataclasses.replace(self.info, job_id=job_id)


class ElementTooLargeError(PayloadTooLargeError):
    """One element's payload (its part and the shared part) is over the limit."""

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.index = index


class SharedFile:
    """The array's file while it is written, then linked once per element.

    It stays open (unnamed) until every element was placed or discarded.
    """

    def __init__(self, folder: Path, elements: int) -> None:
        self._file = PendingFile.unnamed(folder)
        self._buffer = bytearray()
        self.size = 0
        self.open_elements = elements
        self.synced = False

    def write(self, data: Any) -> int:
        """The picklers' output (see ``payload._Sink``)."""
        view = memoryview(data).cast("B")
        size = view.nbytes
        if size >= _BUFFER_BYTES:
            self.flush()
            self._file.write(view)
        else:
            self._buffer += view
            if len(self._buffer) >= _BUFFER_BYTES:
                self.flush()
        self.size += size
        return size

    def flush(self) -> None:
        if self._buffer:
            self._file.write(self._buffer)
            self._buffer = bytearray()

    def link(self, path: Path, durable: bool) -> None:
        if durable and not self.synced:
            self._file.sync()
            self.synced = True
        self._file.link(path)

    def copy_to(
        self, write: Callable[[memoryview], Any], copy_range: Callable[[int, int, int], Any]
    ) -> None:
        """Hand the whole file on (see ``Pickled.copy_to``), once it is complete."""
        self.flush()
        copy_range(self._file.fileno(), 0, self.size)

    def release(self) -> None:
        """One element less needs the file: the last one closes it (the names given stay)."""
        self.open_elements -= 1
        if self.open_elements <= 0:
            self._file.discard()


class ElementPickled(Pickled):
    """One element of a job array's shared payload file: :meth:`place` gives that file one
    more name (a hard link); ``size`` is what loading the element reads."""

    def __init__(self, obj: Any, shared: SharedFile, size: int) -> None:
        super().__init__(obj, Path())
        self._memory = None
        self._shared: SharedFile | None = shared
        self.size = size

    def place(self, path: Path, *, durable: bool = False) -> None:
        """Link the array's file as ``path`` (atomically; ``durable`` fsyncs it once)."""
        assert self._shared is not None, "an element is placed once"
        self._shared.link(path, durable)
        self.discard()

    def discard(self) -> None:
        """Done with this element (placed or not): the last one closes the shared file."""
        if self._shared is not None:
            shared, self._shared = self._shared, None
            shared.release()


def shared_file(elements: Sequence[Pickled]) -> SharedFile | None:
    """The file ``elements`` share when they are one array's (:func:`spool_array`, none
    placed yet), else None: the SSH backend uploads it once, not once per element."""
    files = [item._shared if isinstance(item, ElementPickled) else None for item in elements]
    if not files or files[0] is None or any(file is not files[0] for file in files):
        return None
    return files[0]


def received_array(
    folder: Path, sizes: Sequence[int], fill: Callable[[Callable[[Any], int]], Any]
) -> list[ElementPickled]:
    """The elements of an array whose shared file (as :func:`spool_array` wrote it)
    ``fill`` writes, for ``folder``, with the elements' ``sizes``: the remote side of the SSH
    backend receives an array so."""
    shared = SharedFile(folder, len(sizes))
    try:
        fill(shared.write)
        shared.flush()
    except BaseException:
        shared.open_elements = 0
        shared.release()
        raise
    return [ElementPickled(None, shared, int(size)) for size in sizes]


def spool_array(
    submissions: Sequence[Any], folder: Path, max_bytes: int | None = None
) -> list[ElementPickled]:
    """Pickle a job array's payloads into one file for ``folder`` that has no name yet.

    ``submissions`` are ``DelayedSubmission`` objects: the function they all call (when it is
    one object) is pickled once. Returns one :class:`ElementPickled` per submission, in order.

    Raises
    ------
    ElementTooLargeError
        When an element's payload is larger than ``max_bytes``: nothing is kept.
    JobFolderError, WriteError
        As ``payload.spool``; any other exception comes from pickling.
    """
    functions = {id(getattr(delayed, "function", None)) for delayed in submissions}
    shared_obj = getattr(submissions[0], "function", None) if len(functions) == 1 else None
    shared = SharedFile(folder, len(submissions))
    try:
        shared.write(_header(len(submissions)))
        pickler = payload._Pickler(shared)
        pickler.dump(shared_obj)
        common = shared.size  # the header and the shared part: every element loads them
        if max_bytes is not None and common > max_bytes:
            raise ElementTooLargeError(0, common, max_bytes)
        sizes, offsets = _pickle_elements(submissions, shared, pickler, common, max_bytes)
        index_at = shared.size
        for offset in offsets:
            shared.write(ARRAY_OFFSET.pack(offset))
        shared.write(ARRAY_TRAILER.pack(index_at, ARRAY_MAGIC))
        shared.flush()
    except BaseException:
        shared.open_elements = 0
        shared.release()
        raise
    return [ElementPickled(obj, shared, size) for obj, size in zip(submissions, sizes)]


def _header(elements: int) -> bytes:
    fields = json.loads(payload.header())
    fields.update(format=ARRAY_FORMAT, elements=elements)
    return json.dumps(fields).encode() + b"\n"


def _pickle_elements(
    submissions: Sequence[Any],
    shared: SharedFile,
    first: Any,
    common: int,
    max_bytes: int | None,
) -> tuple[list[int], list[int]]:
    """Each element's part, as a continuation of ``first`` (the pickler of the shared part):
    (each element's whole size, each part's offset in the file)."""
    counted = payload._Sink(shared, None if max_bytes is None else max_bytes - common)
    pickler = payload._Pickler(counted)
    sizes, offsets = [], []
    for index, delayed in enumerate(submissions):
        offsets.append(shared.size)
        counted.size = 0
        pickler.memo = first.memo  # the shared part's memo, never another element's
        pickler.dump(delayed)
        if counted.over_limit:
            raise ElementTooLargeError(index, common + counted.size, int(max_bytes or 0))
        sizes.append(common + counted.size)
    return sizes, offsets


def resubmittable(source: Path, element: int | None, origin: str) -> Pickled:
    """The payload file ``source`` of job ``origin``, to submit again as a new job (see
    ``Executor.resubmit_from``): as it is (a hard link), or, when it is still its array's
    shared file, a file of its own with the two parts its element loads, copied, not
    unpickled."""
    fields = _array_header(source)
    if fields is None or fields.get("elements") == 1:
        return payload.CheckpointPayload(source, origin=origin)
    if element is None or not 0 <= element < int(fields["elements"]):
        raise payload.PayloadError(f"{source} holds an array's payloads, but not element {element}")
    with open(source, "rb") as stream:
        stream.readline()
        shared_at = stream.tell()
        trailer_at = stream.seek(0, os.SEEK_END) - ARRAY_TRAILER.size
        stream.seek(trailer_at)
        index_at, _ = ARRAY_TRAILER.unpack(stream.read(ARRAY_TRAILER.size))
        stream.seek(index_at)
        offsets = [ARRAY_OFFSET.unpack(stream.read(ARRAY_OFFSET.size))[0]
                   for _ in range(int(fields["elements"]))]
        ends = [*offsets[1:], index_at]
        copy = SharedFile(source.parent, 1)
        try:
            # The source's header, whose Python and cloudpickle are those that pickled the
            # bytes copied (not this process's: a server may resubmit a kernel's job).
            copy.write(json.dumps({**fields, "elements": 1}).encode() + b"\n")
            _copy_range(stream, shared_at, offsets[0], copy)
            start = copy.size
            _copy_range(stream, offsets[element], ends[element], copy)
            index = copy.size
            copy.write(ARRAY_OFFSET.pack(start))
            copy.write(ARRAY_TRAILER.pack(index, ARRAY_MAGIC))
            copy.flush()
        except BaseException:
            copy.release()
            raise
    single = ElementPickled(None, copy, copy.size)
    single.origin = origin
    return single


def _array_header(source: Path) -> dict[str, Any] | None:
    """The header of ``source`` when it is a job array's shared file, else None."""
    check_folder_is_safe(source.parent)
    with open(source, "rb") as stream:
        line = stream.readline(4096)
    with contextlib.suppress(ValueError):
        fields = json.loads(line)
        if isinstance(fields, dict) and fields.get("format") == ARRAY_FORMAT:
            return fields
    return None


def _copy_range(stream: Any, start: int, end: int, out: SharedFile) -> None:
    stream.seek(start)
    left = end - start
    while left > 0:
        chunk = stream.read(min(left, _COPY_CHUNK))
        if not chunk:
            raise payload.PayloadError("the array's payload file ends early")
        out.write(chunk)
        left -= len(chunk)
