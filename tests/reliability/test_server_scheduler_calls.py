"""100 parallel list requests over Slurm jobs cost at most one scheduler query (real Slurm).

``tests/test_server.py`` shows that 100 parallel requests share one listing refresh; this test
counts what matters on a cluster: the scheduler commands that refresh runs. Twenty real Slurm
jobs (held by ``--begin``, so they take no CPU) are submitted by another process, as a notebook
kernel would; the server, which has never seen them, must ask Slurm about all of them in one
command (``sacct``, plus ``squeue`` where accounting is disabled), not one command per job.
Every Slurm command the server runs goes through a counting wrapper on ``PATH``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures for this module only (see tests/test_server.py).
from pytest_jupyter.jupyter_server import *  # noqa: F403

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.server.handlers import SETTINGS_KEY
from jupyter_slurm_ckpt.server.jobs import JobService

pytestmark = pytest.mark.slurm

API = "jupyter-slurm-ckpt"
JOBS = 20
COMMANDS = ("sacct", "squeue", "scontrol", "sinfo")



@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_slurm_ckpt.server": True}},
        "SlurmJobsConfig": {"min_poll_interval_s": 600.0},
    }


@pytest.fixture(autouse=True, scope="module")
def _open_event_loop_afterwards() -> Iterator[None]:
    yield
    asyncio.set_event_loop(asyncio.new_event_loop())  # jp_asyncio_loop closes its loops


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Wrap the Slurm commands on PATH; each call appends its command line to the log."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in COMMANDS:
        real = shutil.which(command)
        assert real is not None, command
        wrapper = bin_dir / command
        wrapper.write_text(
            f'#!/bin/sh\necho "{command} $*" >> {shlex.quote(str(log))}\n'
            f'exec {shlex.quote(real)} "$@"\n'
        )
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


SUBMIT = """\
import sys
import jupyter_slurm_ckpt as submitit
executor = submitit.SlurmExecutor(sys.argv[1])
executor.update_parameters(timeout_min=1, additional_parameters={"begin": "now+3600"})
print(" ".join(executor.submit(pow, 2, i).job_id for i in range(int(sys.argv[2]))))
"""


def test_parallel_listings_ask_slurm_once_for_all_jobs(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    jp_root_dir: Path,
    calls: Path,
) -> None:
    folder = jp_root_dir / "project" / "slurm_jobs"
    submitted = subprocess.run(
        [sys.executable, "-c", SUBMIT, str(folder), str(JOBS)],
        capture_output=True, text=True, check=True, timeout=300,
    )
    ids = submitted.stdout.split()
    assert len(ids) == JOBS
    try:
        calls.write_text("")
        service: JobService = jp_serverapp.web_app.settings[SETTINGS_KEY]
        before = service.refreshes
        requests = [jp_fetch(API, "jobs") for _ in range(100)]
        responses = jp_asyncio_loop.run_until_complete(asyncio.gather(*requests))
        commands = calls.read_text().splitlines()
        assert service.refreshes - before == 1
        for response in responses:
            rows = json.loads(response.body)["jobs"]
            assert sorted(row["id"] for row in rows) == sorted(ids)
            assert {row["state"] for row in rows} == {"PENDING"}
        # One query about all the jobs: sacct, and squeue where accounting is disabled.
        assert 1 <= len(commands) <= 2, commands
        for command in commands:
            words = command.split()
            asked = words[words.index("-j") + 1].split(",")
            # Every job in that one command (and jobs this process tracks already, if any).
            assert words[0] in ("sacct", "squeue") and set(ids) <= set(asked), command
    finally:
        for job_id in ids:
            submitit.Job(folder, job_id).cancel()
