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
from collections.abc import Iterable
from pathlib import Path

from ..core.discovery import SKIPPED_FOLDERS, Walk, walk_job_folders

__all__ = [
    "SKIPPED_FOLDERS",
    "OutsideRootsError",
    "Walk",
    "inside_roots",
    "real_roots",
    "walk_job_folders",
]


class OutsideRootsError(ValueError):
    """A requested folder is not inside any job root (after resolving symlinks)."""


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
