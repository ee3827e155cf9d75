"""The server names a job by its folder and its id: three folders that each hold an ``L1``.

Real local jobs, a real authenticated ``ServerApp`` (``jp_fetch``); nothing mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

# pytest-jupyter's fixtures for this module only (see test_server.py).
from pytest_jupyter.jupyter_server import *  # noqa: F403
from support import cancel_leftover_jobs, wait_for
from test_server import (  # the fixtures register as api and jp_server_config
    API,
    WAIT_S,
    Api,
    _open_event_loop_afterwards,  # noqa: F401
    api_fixture,  # noqa: F401
    server_config_fixture,  # noqa: F401
    sleeper,
)

import jupyter_slurm_ckpt as submitit


def fail() -> None:
    raise ValueError("boom")


def test_three_folders_with_an_l1_each_list_three_states(api: Api, jp_root_dir: Path) -> None:
    folders = {name: jp_root_dir / name / "slurm_jobs" for name in ("a", "b", "c")}
    try:
        completed = submitit.LocalExecutor(folders["a"]).submit(print, "done")
        failed = submitit.LocalExecutor(folders["b"]).submit(fail)
        live = submitit.LocalExecutor(folders["c"]).submit(sleeper())
        assert completed.job_id == failed.job_id == live.job_id == "L1"
        # The server reads the ends the jobs record (it never unpickles a result): wait for
        # those, not for the result files (there is a moment between the two).
        for ended in (completed, failed):
            wait_for(lambda j=ended: j.summary().terminal, f"{ended.job_id}'s end", WAIT_S)
        wait_for(lambda: live.state == "RUNNING", "the live job to run", WAIT_S)
        expected = {
            os.path.realpath(folders["a"]): "COMPLETED",
            os.path.realpath(folders["b"]): "FAILED",
            os.path.realpath(folders["c"]): "RUNNING",
        }
        for _ in range(3):  # every listing, not one try in several
            rows = api.rows()
            assert {row["folder"]: row["state"] for row in rows} == expected, rows
        (only,) = api.rows(folder="c")
        assert (only["id"], only["state"]) == ("L1", "RUNNING")
        events = api.get("jobs", "L1", "events", folder=os.path.realpath(folders["b"]))
        assert events[-1]["event"] == "failed" and "boom" in events[-1]["reason"]
    finally:
        for folder in folders.values():
            cancel_leftover_jobs(folder)


def test_resubmit_twice_and_at_once_makes_one_job(api: Api, jp_root_dir: Path) -> None:
    folder = jp_root_dir / "project" / "slurm_jobs"
    try:
        job = submitit.LocalExecutor(folder).submit(sleeper())
        wait_for(lambda: job.state == "RUNNING", "the job to run", WAIT_S)
        job.cancel()
        body = json.dumps({"folder": os.path.realpath(folder)})

        async def resubmit_together() -> list[Any]:
            calls = [
                api.fetch(API, "jobs", "L1", "resubmit", method="POST", body=body)
                for _ in range(4)
            ]
            return list(await asyncio.gather(*calls))

        answers = [json.loads(response.body) for response in api.run(resubmit_together())]
        answers.append(api.post("jobs", "L1", "resubmit", body=json.loads(body)))
        assert {answer["new_id"] for answer in answers} == {"L2"}, answers
        assert [answer["created"] for answer in answers].count(True) == 1
        assert not (folder / "L3_job.json").exists()
        resubmitted = [e for e in job.events() if e["event"] == "resubmitted"]
        assert [e["job_id"] for e in resubmitted] == ["L2"]
    finally:
        cancel_leftover_jobs(folder)


def test_a_job_with_its_own_exception_is_not_resubmitted(api: Api, jp_root_dir: Path) -> None:
    folder = jp_root_dir / "project" / "slurm_jobs"
    job = submitit.LocalExecutor(folder).submit(fail)
    job.wait(WAIT_S)
    body = json.dumps({"folder": os.path.realpath(folder)})
    status = api.status("jobs", job.job_id, "resubmit", method="POST", body=body)
    assert status == 409
    assert not (folder / "L2_job.json").exists()
