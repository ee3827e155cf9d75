"""The pickle files of the job folder: format, streaming, memory, and files with no name yet."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import files, links, payload
from jupyter_slurm_ckpt.core.errors import PayloadError

from .jobs_for_tests import add

MB = 1024**2


def _envelope(obj: object, python: str = payload.PYTHON_VERSION) -> bytes:
    """A file of the first format, as the previous release wrote it."""
    fields = {
        "format": "jupyter_slurm_ckpt/1",
        "python": python,
        "cloudpickle": cloudpickle.__version__,
        "body": cloudpickle.dumps(obj, protocol=4),
    }
    return pickle.dumps(fields, protocol=4)


def test_a_file_is_a_header_line_then_the_pickle_stream(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    size = payload.dump(submitit.DelayedSubmission(add, 1, 2), path)
    data = path.read_bytes()
    assert size == len(data) == payload.serialized_size(submitit.DelayedSubmission(add, 1, 2))
    header, _, stream = data.partition(b"\n")
    assert json.loads(header) == {
        "format": "jupyter_slurm_ckpt/2",
        "python": payload.PYTHON_VERSION,
        "cloudpickle": cloudpickle.__version__,
    }
    assert stream[:2] == b"\x80\x05"  # pickle protocol 5
    assert payload.load(path).result() == 3
    assert payload.deserialize(payload.serialize([1, 2]), "x") == [1, 2]
    assert stat_mode(path) == 0o600


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_of_the_first_format_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.pkl"
    path.write_bytes(_envelope(submitit.DelayedSubmission(add, 2, 3)))
    assert payload.load(path).result() == 5
    path.write_bytes(_envelope(1, python="3.8.10"))
    with pytest.raises(PayloadError, match=rf"{path} was written by Python 3\.8\.10 with"):
        payload.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"format": "jupyter_slurm_ckpt/2"', "is truncated or is not a jupyter_slurm_ckpt"),
        (b'{"format": "jupyter_slurm_ckpt/9"}\n', "is not a jupyter_slurm_ckpt pickle"),
        (b"[1, 2]\n", "is truncated or is not a jupyter_slurm_ckpt"),
    ],
    ids=["cut header", "unknown format", "header not an object"],
)
def test_a_damaged_header_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(content)
    with pytest.raises(PayloadError, match=f"{path} {message}"):
        payload.load(path)


def test_a_cut_stream_is_reported_truncated(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    payload.dump({"weights": np.ones(100_000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(PayloadError, match=f"{path} is truncated"):
        payload.load(path)


class Blob:
    """Any object that pickles its memory as a protocol-5 ``PickleBuffer`` (as numpy does)."""

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        return (Blob, (pickle.PickleBuffer(self.data),))


def test_large_buffers_are_written_and_loaded_without_a_copy(tmp_path: Path) -> None:
    weights = np.arange(48 * MB // 8, dtype=np.float64)
    state = {"weights": weights, "blob": Blob(bytearray(b"b" * (16 * MB))), "step": 12}
    path = tmp_path / "big.pkl"
    tracemalloc.start()
    try:
        payload.dump(state, path)
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        loaded = payload.load(path)
        load_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert write_peak < 1 * MB  # the buffers went from their own memory to the file
    assert load_peak < 64 * MB + 1 * MB  # the buffers, read into their own memory, no more
    assert loaded["step"] == 12 and np.array_equal(loaded["weights"], weights)
    assert loaded["weights"].flags.writeable
    assert loaded["blob"].data == bytearray(b"b" * (16 * MB))


def test_a_spooled_payload_is_invisible_until_placed(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir(mode=0o700)
    before = (sorted(os.listdir(folder)), folder.stat().st_mtime_ns)
    big = payload.spool({"weights": np.ones(4 * MB)}, folder)  # spilled to a file: 32 MiB
    small = payload.spool([1, 2, 3], folder)  # waits in memory
    assert (sorted(os.listdir(folder)), folder.stat().st_mtime_ns) == before
    big.discard()
    assert (sorted(os.listdir(folder)), folder.stat().st_mtime_ns) == before
    small.place(folder / "small.pkl")
    assert payload.load(folder / "small.pkl") == [1, 2, 3]
    # A folder that does not exist yet: the file waits on its parent's filesystem.
    later = tmp_path / "later" / "jobs"
    pickled = payload.spool({"weights": np.ones(4 * MB)}, later)
    assert not (tmp_path / "later").exists()
    files.ensure_private_folder(later)
    pickled.place(later / "big.pkl")
    assert payload.load(later / "big.pkl")["weights"].sum() == 4 * MB
    assert os.listdir(later) == ["big.pkl"] and stat_mode(later / "big.pkl") == 0o600


def test_small_spooled_payloads_hold_no_file_open(tmp_path: Path) -> None:
    open_files = len(os.listdir("/proc/self/fd"))
    pickled = [payload.spool(("payload", index), tmp_path) for index in range(2000)]
    assert len(os.listdir("/proc/self/fd")) == open_files
    for item in pickled:
        item.discard()


def test_an_oversized_payload_is_counted_to_its_end_and_dropped(tmp_path: Path) -> None:
    with pytest.raises(payload.PayloadTooLargeError) as caught:
        payload.spool({"weights": np.ones(8 * MB)}, tmp_path, max_bytes=10 * MB)
    assert caught.value.size > 64 * MB and caught.value.limit == 10 * MB
    assert os.listdir(tmp_path) == []


def test_an_unnamed_file_is_copied_where_it_cannot_be_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some sandboxes refuse both ways of linking an unnamed file (linkat with AT_EMPTY_PATH
    # needs a capability; /proc/self/fd links can be refused): simulated here, since this
    # machine allows one of them.
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(links, "_link_with_empty_path", refuse)
    monkeypatch.setattr(links, "_link_through_proc", refuse)
    pending = files.PendingFile.unnamed(tmp_path)
    data = os.urandom(3 * MB + 5)
    pending.write(data)
    pending.commit(tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data
    assert os.listdir(tmp_path) == ["x.bin"] and stat_mode(tmp_path / "x.bin") == 0o600

    # An array's file gets its elements' names the same way: a name shows the whole copy or
    # nothing, never a part (a reader of the folder, a killed submitter).
    pending = files.PendingFile.unnamed(tmp_path)
    pending.write(data)
    seen_during_copy = []
    real_pread = os.pread

    def pread_watching(fd: int, size: int, offset: int) -> bytes:
        if (tmp_path / "L1_0_submitted.pkl").exists():
            seen_during_copy.append(offset)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(links.os, "pread", pread_watching)
    pending.link(tmp_path / "L1_0_submitted.pkl")
    pending.discard()
    assert seen_during_copy == []
    assert (tmp_path / "L1_0_submitted.pkl").read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["L1_0_submitted.pkl", "x.bin"]


RESULT_WRITER = """
import resource, signal, sys
from pathlib import Path
from jupyter_slurm_ckpt.core import outcome, payload

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, resource.RLIM_INFINITY))
path = Path(sys.argv[1])
print("write error:", outcome.write_outcome(path, "success", b"x" * (2 * 1024 * 1024)))
print("left:", sorted(p.name for p in path.parent.iterdir()))
outcome.write_outcome(path, "success", __import__("threading").Lock())
print("unpicklable:", payload.load(path)[1][:60])
"""


def test_a_result_the_disk_refuses_is_not_reported_as_unpicklable(tmp_path: Path) -> None:
    # In a child process: a file size limit makes the disk refuse the second MiB.
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RESULT_WRITER), str(tmp_path / "L1_0_result.pkl")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("write error: the result could not be written to ")
    assert lines[0].endswith(": File too large (EFBIG)")
    assert lines[1] == "left: []"
    assert lines[2].startswith("unpicklable: the job's result of type lock cannot be pickled")
