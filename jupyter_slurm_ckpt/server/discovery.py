"""Find job folders under the job roots, and keep requests inside those roots.

Discovery choice: a job folder is recognised by its **marker files** ``<id>_job.json`` (the
core writes one per job at submission, DESIGN.md §4). The roots are walked breadth-first to a
bounded depth, skipping hidden folders (``.git``, ``.venv``, ``.ipynb_checkpoints``...),
``node_modules``, ``__pycache__`` and ``site-packages``, without following symlinked folders
(no loops, no escape from the root) and stopping after a bounded number of folders. Why not a
per-user index appended by the core: it would be a second source of truth that goes stale when
folders are moved or deleted, and jobs submitted by plain scripts or other machines sharing the
filesystem would be missed; the folder itself is the contract. The walk's result is cached
(``discovery_interval_s``); the folders already found are re-read at every refresh.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import JobPaths

#: Folder names never searched: tools' trees that can be huge and never hold job folders.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages", "venv"})


class OutsideRootsError(ValueError):
    """A requested folder is not inside any job root (after resolving symlinks)."""


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


def real_roots(roots: Iterable[str | Path]) -> list[Path]:
    """The roots with symlinks resolved, existing folders only, without duplicates."""
    result: list[Path] = []
    for root in roots:
        real = Path(os.path.realpath(Path(root).expanduser()))
        if real.is_dir() and real not in result:
            result.append(real)
    return result


def inside_roots(raw: str, roots: list[Path], base: Path) -> Path:
    """Resolve a folder named by a client and check it lies within one of ``roots``.

    ``raw`` may be absolute or relative to ``base`` (the server's root_dir). Symlinks and
    ``..`` are resolved before the check, so neither can lead outside the roots.

    Raises
    ------
    OutsideRootsError
        If the resolved folder is outside every root, or the name is not a plain path.
    """
    if not raw or "\0" in raw:
        raise OutsideRootsError("folder must be a non-empty path")
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = base / candidate
    real = Path(os.path.realpath(candidate))
    for root in roots:
        if real == root or root in real.parents:
            return real
    raise OutsideRootsError(f"folder {raw!r} is not inside the server's job roots")
