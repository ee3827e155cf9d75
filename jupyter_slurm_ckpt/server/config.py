"""``SlurmJobsConfig``: what the sidebar's server extension may read, and how often it asks."""

from __future__ import annotations

from typing import Any

from traitlets import Float, Int, List, TraitError, Unicode, validate

from ..backends.ssh.target import SCHEME, SshTarget
from ..views.polling import SchedulerPolling


class SlurmJobsConfig(SchedulerPolling):
    """Settings of the "Slurm jobs" server extension (``c.SlurmJobsConfig.*``), and how often
    Slurm is asked about the listed jobs (``poll_*_s``: the budget of all browser tabs)."""

    job_roots = List(
        Unicode(),
        help=(
            "Folders under which job folders are discovered and may be read or acted on. "
            "Empty (the default) means the server's root_dir. A job folder outside every root "
            "is refused, symlinks resolved."
        ),
    ).tag(config=True)

    min_poll_interval_s = Float(
        2.0,
        help=(
            "Minimum time between two refreshes of the job listing (which ask the scheduler "
            "for states). Requests in between get the cached listing; concurrent requests "
            "share one refresh."
        ),
    ).tag(config=True)

    discovery_interval_s = Float(
        10.0,
        help=(
            "How long a walk of the job roots (looking for *_job.json marker files) is reused. "
            "Folders already known are re-read at every refresh, so new jobs in them show "
            "at once; new folders show within this interval."
        ),
    ).tag(config=True)

    discovery_depth = Int(
        5, help="How many folder levels below a job root are searched for job folders."
    ).tag(config=True)

    discovery_max_folders = Int(
        20000, help="Stop a discovery walk after visiting this many folders (huge trees)."
    ).tag(config=True)

    remote_roots = List(
        Unicode(),
        help=(
            "Job roots on clusters reached over SSH, listed beside the local ones through one "
            "multiplexed connection of your own ssh: ssh://[user@]host[:port]/folder "
            "(ssh://login-node/~/slurm_jobs: in the home there)."
        ),
    ).tag(config=True)

    remote_python = Unicode(
        "python3",
        help="The Python that has jupyter_slurm_ckpt installed on those clusters.",
    ).tag(config=True)

    max_page_size = Int(
        1000,
        help="The most jobs one page of the listing may hold (the sidebar asks for 50 at a "
        "time). Every job stays reachable: the listing is paged, never cut.",
    ).tag(config=True)

    action_timeout_s = Float(
        60.0,
        help="Cancel, interrupt and reads that take longer than this answer 504.",
    ).tag(config=True)

    @validate("min_poll_interval_s", "discovery_interval_s", "action_timeout_s")
    def _non_negative(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value < 0:
            raise TraitError(f"{proposal['trait'].name} must be >= 0, not {value}")
        return value

    @validate("remote_roots")
    def _ssh_urls(self, proposal: dict[str, Any]) -> list[str]:
        for url in proposal["value"]:
            try:
                target = SshTarget.parse(url)
            except ValueError as error:
                raise TraitError(f"remote_roots: {error}") from None
            if not url.startswith(SCHEME) or not target.folder:
                raise TraitError(f"remote_roots: {url!r} is not ssh://host/folder")
        return list(proposal["value"])

    @validate("discovery_depth", "discovery_max_folders", "max_page_size")
    def _positive(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be >= 1, not {value}")
        return value
