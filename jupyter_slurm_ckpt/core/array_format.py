"""The layout of a job array's shared payload file, and the reading of one of its elements.

After the header line (format :data:`ARRAY_FORMAT`, versions, ``elements``): the part every
element shares (the function they all call) pickled once, then each element's part pickled as
a continuation of it (so that what it shares with the shared part is referenced, not copied),
then the index (each element's offset, :data:`ARRAY_OFFSET`), and a trailer: the index's offset
and :data:`ARRAY_MAGIC` (:data:`ARRAY_TRAILER`). ``array_payload`` writes it, ``payload.load``
reads it through :func:`read_element`.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import IO, Any

from .errors import PayloadError

ARRAY_FORMAT = "jupyter_slurm_ckpt/2-array"
ARRAY_MAGIC = b"JSCARRAY"
ARRAY_OFFSET = struct.Struct("<Q")
ARRAY_TRAILER = struct.Struct("<Q8s")


def read_element(
    stream: IO[bytes], fields: dict[str, Any], origin: str, element: int | None
) -> Any:
    """One element of a job array's shared file (see :data:`ARRAY_FORMAT`): the shared part,
    then the element's part with the memo the shared part left (what they share, they share)."""
    count = fields.get("elements")
    if not isinstance(count, int) or count < 1:
        raise pickle.UnpicklingError("the header does not say how many elements it holds")
    if element is None and count == 1:
        element = 0
    if element is None or not 0 <= element < count:
        raise PayloadError(
            f"{origin} holds the payloads of the {count} elements of a job array, and which one "
            f"to load is not known ({element}): load it through its element's file, "
            "<array id>_<index>_submitted.pkl"
        )
    shared_at = stream.tell()
    trailer_at = stream.seek(0, os.SEEK_END) - ARRAY_TRAILER.size
    stream.seek(max(trailer_at, 0))
    index_at, magic = ARRAY_TRAILER.unpack(stream.read(ARRAY_TRAILER.size))
    if magic != ARRAY_MAGIC or not shared_at <= index_at <= trailer_at - count * ARRAY_OFFSET.size:
        raise pickle.UnpicklingError("the file does not end with its index")
    stream.seek(index_at)
    offsets = [*ARRAY_OFFSET.iter_unpack(stream.read(count * ARRAY_OFFSET.size)), (index_at,)]
    start, end = offsets[element][0], offsets[element + 1][0]
    if not shared_at < offsets[0][0] <= start < end <= index_at:
        raise pickle.UnpicklingError(f"the index gives element {element} no place in the file")
    # One unpickler reads the shared part, then the element's, as one stream: the element's
    # part continues the shared part's memo. (Copying a memo into a new unpickler does not
    # carry its length in CPython 3.11: the element's own memo entries would overwrite it.)
    unpickler = pickle.Unpickler(_Spliced(stream, [(shared_at, offsets[0][0]), (start, end)]))
    unpickler.load()
    return unpickler.load()


class _Spliced:
    """Byte ranges of a file read one after the other as one stream (``read``, ``readinto``
    and ``readline``: what an unpickler needs)."""

    def __init__(self, stream: IO[bytes], ranges: list[tuple[int, int]]) -> None:
        self._stream = stream
        self._ranges = ranges
        self._left = 0

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            if self._left == 0:
                if not self._ranges:
                    break
                start, end = self._ranges.pop(0)
                self._stream.seek(start)
                self._left = end - start
                continue
            got = self._stream.readinto(view[done : done + min(len(view) - done, self._left)])  # type: ignore[attr-defined]
            if not got:
                break
            done += got
            self._left -= got
        return done

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self._left + sum(end - start for start, end in self._ranges)
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def readline(self, size: int = -1) -> bytes:
        line = bytearray()
        while size < 0 or len(line) < size:
            byte = self.read(1)
            line += byte
            if not byte or byte == b"\n":
                break
        return bytes(line)
