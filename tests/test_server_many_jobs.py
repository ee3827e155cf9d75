"""The sidebar's listing of thousands of jobs: paged, filtered, every job reachable; clean-up.

A real authenticated Jupyter server (``jp_fetch``) over a folder of 2,500 ended jobs written
with the package's own writers (``tests/many_jobs.py``) and real local jobs that run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from many_jobs import DAY_S, build_ended_jobs

# pytest-jupyter's fixtures for this module only (see test_server.py).
from pytest_jupyter.jupyter_server import *  # noqa: F403
from support import cancel_leftover_jobs, wait_for
from test_server import (  # the fixtures register as api and jp_server_config
    Api,
    _open_event_loop_afterwards,  # noqa: F401
    api_fixture,  # noqa: F401
    server_config_fixture,  # noqa: F401
)

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core.catalog import JobCatalog

WAIT_S = 120.0
JOBS = 2_500


@pytest.fixture
def many(jp_root_dir: Path) -> Any:
    folder = jp_root_dir / "project" / "slurm_jobs"
    built = build_ended_jobs(folder, JOBS, arrays=5, array_size=100, days=30, now=time.time())
    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(name="live")
    live = executor.submit(time.sleep, 600)
    wait_for(lambda: live.state == "RUNNING", "the live job to run", WAIT_S)
    yield folder, built, live
    cancel_leftover_jobs(folder)


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(row["folder"], row["id"]) for row in rows]


def test_every_job_is_reachable_page_by_page_newest_first(api: Api, many: Any) -> None:
    folder, built, live = many
    first = api.get("jobs", limit=100)
    assert first["total"] == first["all"] == JOBS + 1
    assert first["jobs"][0]["id"] == live.job_id and first["jobs"][0]["state"] == "RUNNING"
    seen: list[tuple[str, str]] = []
    offset = 0
    while offset < first["total"]:
        page = api.get("jobs", offset=offset, limit=250)
        assert page["offset"] == offset and len(page["jobs"]) == min(250, page["total"] - offset)
        seen += keys(page["jobs"])
        offset += 250
    real = os.path.realpath(folder)
    expected = {(real, path.name[: -len("_job.json")]) for path in folder.glob("*_job.json")}
    assert len(seen) == len(set(seen)) and set(seen) == expected
    marks = [os.stat(Path(f) / f"{job_id}_job.json").st_mtime for f, job_id in seen]
    assert marks == sorted(marks, reverse=True)  # newest first, across the pages
    # Once every job was read, each state is counted (the first page may come before that).
    counts = api.get("jobs", limit=1)["counts"]
    ended = {state: len(ids) for state, ids in built.ids.items()}
    ended["COMPLETED"] += ended.pop("REQUEUED_COMPLETED")
    assert counts == {**ended, "RUNNING": 1}


def test_filters_by_state_name_and_text(api: Api, many: Any) -> None:
    folder, _, live = many
    catalog = {e.key.job_id: e for e in JobCatalog().jobs([folder])}
    page = api.get("jobs", state="TIMEOUT,CANCELLED", name="TRAIN", limit=1000)
    wanted = {
        job_id
        for job_id, entry in catalog.items()
        if entry.final_state in ("TIMEOUT", "CANCELLED") and "train" in entry.name
    }
    assert {row["id"] for row in page["jobs"]} == wanted and page["total"] == len(wanted) > 0
    assert {row["state"] for row in page["jobs"]} == {"TIMEOUT", "CANCELLED"}
    # The counts are those of the other filters: every state the name has.
    named = Counter(e.final_state for e in catalog.values() if "train" in e.name)
    assert page["counts"] == dict(named)
    # The same state given twice over, as the sidebar sends it.
    again = api.get("jobs", state=["TIMEOUT", "CANCELLED"], name="train", limit=1000)
    assert keys(again["jobs"]) == keys(page["jobs"])
    # Any text: an id, a state, a folder name.
    (one,) = api.get("jobs", q=live.job_id)["jobs"]
    assert one["id"] == live.job_id
    assert api.get("jobs", q="running")["total"] == 1
    array = next(e.key.job_id for e in catalog.values() if "_" in e.key.job_id).partition("_")[0]
    assert api.get("jobs", q=array)["total"] == 100  # every element of the array
    assert api.get("jobs", q=array + "_1")["total"] == 1
    assert api.get("jobs", q="project/slurm")["total"] == JOBS + 1
    assert api.get("jobs", q="no such thing")["total"] == 0
    names = dict(api.get("jobs", limit=1)["names"])
    assert names["live"] == 1 and sum(names.values()) == JOBS + 1


def test_page_requests_that_make_no_sense_are_400(api: Api, many: Any) -> None:
    for params in ({"limit": -1}, {"limit": 5000}, {"offset": -3}, {"limit": "ten"}):
        assert api.status("jobs", params=params) == 400, params
    assert api.get("jobs", offset=10**6)["jobs"] == []


def test_clean_from_the_sidebar_keeps_live_jobs(api: Api, many: Any) -> None:
    folder, _, live = many
    entries = JobCatalog().jobs([folder])
    cutoff = time.time() - 7 * DAY_S
    old = {
        e.key.job_id
        for e in entries
        if e.final_state in ("COMPLETED", "CANCELLED") and (e.ended_at or 0) < cutoff
    }
    request = {"older_than_s": 7 * DAY_S, "states": ["COMPLETED", "CANCELLED"]}
    dry = api.post("jobs", "clean", body={**request, "dry_run": True})
    assert dry == {
        "removed": len(old), "bytes": dry["bytes"], "dry_run": True, "abandoned_files": 0,
        "kept": [],
    }
    assert len(list(folder.glob("*_job.json"))) == JOBS + 1
    done = api.post("jobs", "clean", body=request)
    assert done["removed"] == len(old) and not done["dry_run"]
    left = {path.name[: -len("_job.json")] for path in folder.glob("*_job.json")}
    assert left == {e.key.job_id for e in entries} - old and live.job_id in left
    assert live.state == "RUNNING"
    # The next page shows it at once.
    assert api.get("jobs", limit=1)["all"] == JOBS + 1 - len(old)
    # A clean of everything ended still leaves the live job.
    api.post("jobs", "clean", body={})
    assert [row["id"] for row in api.rows()] == [live.job_id]


def test_clean_requests_are_checked(api: Api, many: Any) -> None:
    bodies = [
        {"states": ["RUNNING"]},
        {"states": "COMPLETED"},
        {"older_than_s": -1},
        {"older_than_s": "old"},
        {"dry_run": "yes"},
        {"folders": "project"},
        {"folders": ["../elsewhere"]},
    ]
    for body in bodies:
        code = api.status("jobs", "clean", method="POST", body=json.dumps(body))
        assert code in (400, 404), body
    assert len(list(many[0].glob("*_job.json"))) == JOBS + 1
