"""The sidebar lists a job root on the cluster (``c.SlurmJobsConfig.remote_roots``), through
the same kind of connection as the kernels, and its actions act there.

The Jupyter server runs as the laptop user (its own ``ssh`` and config, as a user's would); this
test asks its REST API with the server's token, as the sidebar does.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ssh_world import HOST, SSH_TESTS, Laptop, SshWorld
from support import wait_for
from test_ssh_notebook import printed, ready

pytestmark = SSH_TESTS


class Server:
    """A Jupyter server of the laptop user, asked over its REST API."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}/jupyter-slurm-ckpt/jobs"
        self.token = token

    def call(self, path: str = "", body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def rows(self) -> list[dict[str, Any]]:
        try:
            return list(self.call()["jobs"])  # one page: the newest 50
        except OSError:  # not listening yet
            return []


@pytest.fixture
def server(laptop: Laptop, ssh_world: SshWorld, remote_folder: str) -> Iterator[Server]:
    config = laptop.cwd / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"jupyter_slurm_ckpt.server": True}},
                "SlurmJobsConfig": {
                    "remote_roots": [f"ssh://{HOST}/~/{remote_folder}"],
                    "remote_python": "~/env/bin/python",
                    "min_poll_interval_s": 0.5,
                },
            }
        )
    )
    os.chmod(config, 0o644)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    laptop_user = ssh_world.laptop
    process = subprocess.Popen(
        [
            "runuser", "-u", laptop_user.pw_name, "--", "env", f"HOME={laptop_user.pw_dir}",
            f"XDG_RUNTIME_DIR={laptop.cwd / '.runtime'}", ssh_world.laptop_python,
            "-m", "jupyter_server", f"--config={config}", f"--port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={laptop.cwd}", "--no-browser",
        ],
        cwd=laptop.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield Server(port, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_sidebar_lists_a_remote_job_root_and_acts_there(
    laptop: Laptop, server: Server, ssh_world: SshWorld, remote_folder: str
) -> None:
    frontend = ready(laptop, remote_folder)
    job_id = printed(
        frontend,
        f"%slurm --cluster ssh://{HOST} --no-widget --sbatch begin=now+3600 job = len('waits')\n"
        "print(repr(job.job_id))",
    )

    def our_row() -> dict[str, Any] | None:
        rows = [row for row in server.rows() if row["id"] == job_id]
        return rows[0] if rows and rows[0]["state"] == "PENDING" else None

    row = wait_for(our_row, "the remote job in the sidebar's listing", timeout=120)
    assert row["backend"] == "ssh" and row["error"] is None, row

    answer = server.call(f"/{job_id}/cancel", {"folder": row["folder"]})
    assert answer["ok"] and answer["state"] == "CANCELLED", answer
    events = Path(ssh_world.cluster_path(remote_folder)) / f"{job_id}_events.jsonl"
    assert '"cancelled"' in events.read_text(), "recorded on the cluster"
    wait_for(
        lambda: any(r["id"] == job_id and r["state"] == "CANCELLED" for r in server.rows()),
        "the listing to show the cancel",
    )
