"""Job roots on clusters reached over SSH (``c.SlurmJobsConfig.remote_roots``) for the sidebar.

Each refresh of the listing copies the jobs of every remote root into this machine's mirror
(``backends.ssh.listing``: which jobs the root holds, then their states and new events, two
round trips through the same multiplexed connection the kernels use), read-only: the server
never records anything on the cluster. The mirrors are then listed like any job folder, and
their jobs' actions (interrupt, cancel, resubmit) run on the cluster. A cluster that cannot be
reached keeps the rows it last showed; each row says why (``scheduler_problem``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..backends.ssh.connection import RemoteUnreachable
from ..backends.ssh.hello import RemoteEnvironmentError
from ..backends.ssh.listing import mirror_remote_jobs
from .config import SlurmJobsConfig

_log = logging.getLogger(__name__)


class RemoteRoots:
    """The configured remote roots and the local mirrors they are listed from."""

    def __init__(self, config: SlurmJobsConfig) -> None:
        self.config = config
        self._mirrors: dict[str, Path] = {}
        self._said: dict[str, str] = {}

    @property
    def folders(self) -> list[Path]:
        """The mirrors known so far (a root whose cluster never answered has none yet)."""
        return list(self._mirrors.values())

    def refresh(self) -> list[Path]:
        """Copy every remote root's jobs here; returns the mirrors (see the module doc)."""
        for url in self.config.remote_roots:
            try:
                self._mirrors[url] = mirror_remote_jobs(
                    url,
                    "",
                    python=self.config.remote_python,
                    depth=self.config.discovery_depth,
                    read_only=True,
                )
                self._said.pop(url, None)
            except (RemoteUnreachable, RemoteEnvironmentError) as error:
                if self._said.get(url) != str(error):  # once per new reason, not per refresh
                    _log.warning("jupyter_slurm_ckpt: remote job root %s: %s", url, error)
                    self._said[url] = str(error)
        return self.folders
