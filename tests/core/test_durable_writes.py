"""Checkpoints and results are durable once written: the data, then the folder's new name.

A node crash cannot be staged here, so the test watches the real calls instead (``os.fsync``
wrapped, still called): the file's data is synced before its rename, and its folder after it,
so that a crash can bring back neither the old checkpoint nor an empty file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.helpers import DelayedSubmission


def test_a_checkpoint_is_synced_then_its_folder_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "L1_submitted.pkl"
    target.write_bytes(b"the previous checkpoint")
    synced: list[tuple[str, bytes | None]] = []  # (file or folder, the target's content then)
    real_fsync = os.fsync

    def watched_fsync(fd: int) -> None:
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append((kind, target.read_bytes()[:23]))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watched_fsync)
    payload.dump(DelayedSubmission(sorted, [3, 1, 2]), target)
    monkeypatch.undo()

    assert [kind for kind, _ in synced] == ["file", "folder"]
    assert synced[0][1] == b"the previous checkpoint"  # the data, before its rename
    assert synced[1][1] != b"the previous checkpoint"  # the folder, after it
    assert payload.load(target).result() == [1, 2, 3]


def test_a_submission_stays_off_the_disk_s_sync_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not durable on purpose (a crash before the job starts loses the job anyway): the
    # submission's hot path pays no fsync, of the file or of its folder.
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    payload.dump([1, 2, 3], tmp_path / "L1_submitted.pkl", durable=False)
    assert calls == []
