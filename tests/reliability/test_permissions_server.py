"""The server extension refuses job folders others control, before any pickle in them is loaded.

A real authenticated ``ServerApp`` (pytest-jupyter's ``jp_fetch``), real local jobs whose result
and payload pickles were replaced by traps (see ``test_permissions.py``); the folder is given to
``nobody`` or opened to others, then every route is tried.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures for this module only (see tests/test_server.py).
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPClientError

from .test_permissions import UNSAFE, trapped_job, unsafe

API = "jupyter-slurm-ckpt"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_slurm_ckpt.server": True}},
        "SlurmJobsConfig": {"min_poll_interval_s": 0.0, "discovery_interval_s": 0.0},
    }


@pytest.fixture(autouse=True, scope="module")
def _open_event_loop_afterwards() -> Iterator[None]:
    yield
    asyncio.set_event_loop(asyncio.new_event_loop())  # jp_asyncio_loop closes its loops


def request(
    fetch: Any, loop: asyncio.AbstractEventLoop, *parts: str, **kwargs: Any
) -> tuple[int, Any]:
    try:
        response = loop.run_until_complete(fetch(API, *parts, **kwargs))
    except HTTPClientError as error:
        return error.code, None
    return response.code, json.loads(response.body)


@pytest.mark.parametrize("how", UNSAFE)
def test_the_server_refuses_a_folder_others_control(
    jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_root_dir: Path, how: str
) -> None:
    folder = jp_root_dir / "project" / "slurm_jobs"
    job, marker = trapped_job(folder)
    with unsafe(folder, how) as expected:
        code, page = request(jp_fetch, jp_asyncio_loop, "jobs")
        assert code == 200
        row = next(row for row in page["jobs"] if row["id"] == job.job_id)
        assert row["state"] == "UNKNOWN" and row["error"].startswith(expected), row
        params = {"folder": str(folder)}
        for action in ("events", "log"):
            code, _ = request(jp_fetch, jp_asyncio_loop, "jobs", job.job_id, action, params=params)
            assert code == 403, action
        body = json.dumps({"folder": str(folder)})
        for action in ("cancel", "interrupt"):
            code, _ = request(
                jp_fetch, jp_asyncio_loop, "jobs", job.job_id, action, method="POST", body=body
            )
            assert code == 403, action
        assert not marker.exists(), "a pickle of the unsafe folder was loaded"
    code, page = request(jp_fetch, jp_asyncio_loop, "jobs")  # safe again: listed as it is
    row = next(row for row in page["jobs"] if row["id"] == job.job_id)
    assert row["state"] == "COMPLETED" and row["error"] is None
