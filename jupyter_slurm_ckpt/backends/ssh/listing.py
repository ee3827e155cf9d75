"""The jobs of a job folder on a cluster reached over SSH, copied here to be listed.

``%slurm_jobs`` (and the sidebar's remote job roots) list a job folder there as they list one
here: :func:`mirror_remote_jobs` asks the remote side which jobs the folder holds (one round
trip), brings their copies up to date (one more, for all of them) and returns the mirror, a
job folder like any other (``views.listing.list_jobs`` re-attaches its jobs as ``SshJob``).
Copies of jobs the cluster no longer has are dropped.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ...core.catalog import job_ids_in
from ...core.discovery import walk_job_folders
from ...core.paths import JobKey, JobPaths
from .executor import DEFAULT_REMOTE_PYTHON, remote_path
from .mirror import MirroredJob, ensure_mirror, mirror_folder
from .session import remote_for
from .states import states_of
from .target import SshTarget

#: A copy is kept this long after it was made even when the cluster does not list its job.
FORGET_AFTER_S = 60.0


def mirror_remote_jobs(
    remote: str, folder: str, python: str | None = None, depth: int = 1, read_only: bool = False
) -> Path:
    """Copy the jobs of ``folder`` on ``remote`` (``ssh://...``; its folder part when
    ``folder`` is empty), and of its subfolders to ``depth`` levels, and return the copy of
    ``folder``. ``read_only``: as the Jupyter server reads jobs (nothing recorded there).

    Raises
    ------
    RemoteUnreachable, RemoteEnvironmentError
        As ``SshExecutor`` (the cluster cannot be reached, or cannot run this kernel's jobs).
    """
    target = SshTarget.parse(remote)
    states = states_of(remote_for(target, python or DEFAULT_REMOTE_PYTHON))
    hello = states.remote.start()
    there = remote_path(folder or target.folder or ".", str(hello["home"]))
    answer = states.remote.request({"op": "list", "folder": there, "depth": depth})
    jobs = [
        states.tracked(str(entry["folder"]), str(entry["id"]), read_only=read_only)
        for entry in answer.get("jobs") or []
    ]
    if jobs:
        states.refresh(jobs, only_stale=False)
    copy = ensure_mirror(mirror_folder(states.remote.connection.identity, there))
    forget_gone(copy, depth, {job.key for job in jobs})
    return copy


def forget_gone(copy: Path, depth: int, there: set[JobKey]) -> None:
    """Drop the copies of jobs the cluster no longer has (their folder there was deleted),
    except those of the last minute (another process may be submitting one right now)."""
    old = time.time() - FORGET_AFTER_S
    for folder in walk_job_folders([copy], depth, 20000).folders:
        for job_id in job_ids_in(folder):
            paths = JobPaths(folder, job_id)
            with contextlib.suppress(OSError):
                if JobKey(folder, job_id) not in there and paths.info.stat().st_mtime < old:
                    MirroredJob(paths).remove()
