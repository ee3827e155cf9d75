"""jupyter_server extension behind the "Slurm jobs" sidebar: authenticated REST over job folders.

Enabled on install by ``jupyter-config/jupyter_server_config.d/jupyter_slurm_ckpt.json``
(``jupyter server extension enable jupyter_slurm_ckpt.server`` does the same by hand).
Configure it with ``c.SlurmJobsConfig.job_roots``, ``min_poll_interval_s``... (see ``config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._version import __version__
from .config import SlurmJobsConfig
from .discovery import real_roots
from .handlers import SETTINGS_KEY, routes
from .jobs import JobService

__all__ = ["JobService", "SlurmJobsConfig", "__version__"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_slurm_ckpt.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers on a running ``ServerApp``."""
    config = SlurmJobsConfig(parent=serverapp)
    base = Path(serverapp.root_dir).expanduser()
    roots = real_roots(config.job_roots or [base])
    if not roots:
        serverapp.log.warning("jupyter_slurm_ckpt: no job root exists; the sidebar lists nothing")
    service = JobService(config, roots, base)
    web_app = serverapp.web_app
    web_app.settings[SETTINGS_KEY] = service
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info(
        "jupyter_slurm_ckpt: Slurm jobs API at %sjupyter-slurm-ckpt/jobs, job roots: %s",
        web_app.settings["base_url"],
        ", ".join(map(str, roots)),
    )


# The name older servers (jupyter_server < 2, notebook's nbserver) look for.
load_jupyter_server_extension = _load_jupyter_server_extension
