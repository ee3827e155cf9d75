"""Find job folders: the folders under some roots that hold job description files.

A job folder is recognised by its **marker files** ``<id>_job.json`` (the core writes one per
job at submission). The roots are walked breadth-first to a bounded depth, skipping hidden
folders (``.git``, ``.venv``, ``.ipynb_checkpoints``...), ``node_modules``, ``__pycache__`` and
``site-packages``, without following symlinked folders (no loops, no escape from the root) and
stopping after a bounded number of folders. The sidebar's server walks its job roots with it,
and so does the remote side of the SSH backend for a job root on a cluster.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .paths import JobPaths

#: Folder names never searched: tools' trees that can be huge and never hold job folders.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages", "venv"})


@dataclass
class Walk:
    """Result of one discovery walk."""

    folders: list[Path]
    visited: int
    truncated: bool


def walk_job_folders(roots: Iterable[Path], max_depth: int, max_folders: int) -> Walk:
    """Folders below ``roots`` (depth <= ``max_depth``) that hold at least one marker file."""
    found: list[Path] = []
    seen: set[Path] = set()
    queue = deque((Path(root), 0) for root in roots)
    visited = 0
    while queue:
        folder, depth = queue.popleft()  # breadth-first: shallow job folders are found first
        if folder in seen:
            continue
        seen.add(folder)
        visited += 1
        if visited > max_folders:
            return Walk(found, visited - 1, truncated=True)
        has_marker = False
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if depth < max_depth and not _skipped(name):
                            queue.append((Path(entry.path), depth + 1))
                    elif not has_marker and JobPaths.job_id_of(name) is not None:
                        has_marker = True
        except OSError:  # unreadable or vanished: not ours to report
            continue
        if has_marker:
            found.append(folder)
    return Walk(found, visited, truncated=False)


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_FOLDERS
