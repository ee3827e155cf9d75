"""The sidebar's server extension over real local jobs, through a real authenticated server.

``jp_fetch`` (pytest-jupyter) talks HTTP to a real ``ServerApp`` that requires a token; the jobs
are real local-backend processes submitted with ``LocalExecutor``. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer

# pytest-jupyter's fixtures (jp_fetch, jp_serverapp...) for this module only: registered as a
# plugin they would add autouse event-loop and ServerApp fixtures to every test of the session.
from pytest_jupyter.jupyter_server import *  # noqa: F403
from support import cancel_leftover_jobs, wait_for
from test_widget_jobs import Stepper, tqdm_loop
from tornado.httpclient import HTTPClientError

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.server.handlers import SETTINGS_KEY
from jupyter_slurm_ckpt.server.jobs import JobService
from jupyter_slurm_ckpt.views.status import collect_status

WAIT_S = 120.0  # generous: other engineers run tests on the same 2 cores
API = "jupyter-slurm-ckpt"


SERVER_CONFIG: dict[str, Any] = {
    "ServerApp": {"jpserver_extensions": {"jupyter_slurm_ckpt.server": True}},
    "SlurmJobsConfig": {"min_poll_interval_s": 0.2, "discovery_interval_s": 0.2},
}


@pytest.fixture(name="jp_server_config")
def server_config_fixture() -> dict[str, Any]:
    return json.loads(json.dumps(SERVER_CONFIG))


@pytest.fixture(autouse=True, scope="module")
def _open_event_loop_afterwards() -> Iterator[None]:
    yield
    # jp_asyncio_loop closes each test's loop: leave an open one to the modules that follow.
    asyncio.set_event_loop(asyncio.new_event_loop())


class ReadOnlyAuthorizer(Authorizer):
    """Lets users read but not act (the GET verbs are "read", the POST verbs "write")."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read"


@pytest.fixture
def job_folder(jp_root_dir: Path) -> Path:
    return jp_root_dir / "project" / "slurm_jobs"


@pytest.fixture
def executor(job_folder: Path) -> Iterator[submitit.LocalExecutor]:
    executor = submitit.LocalExecutor(job_folder)
    yield executor
    cancel_leftover_jobs(job_folder)


def sleeper(seconds: float = 600.0) -> submitit.helpers.FunctionSequence:
    """A checkpointable callable from the library itself: requeues where it stands."""
    sequence = submitit.helpers.FunctionSequence()
    sequence.add(time.sleep, seconds)
    return sequence


def running(executor: submitit.LocalExecutor) -> submitit.Job[Any]:
    job = executor.submit(sleeper())
    wait_for(lambda: job.state == "RUNNING", f"job {job.job_id} to run", WAIT_S)
    return job


class Api:
    """The extension's REST API through ``jp_fetch``, with the token (or without, on request)."""

    def __init__(self, fetch: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.fetch = fetch
        self.loop = loop

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    async def _request(self, parts: tuple[str, ...], params: dict[str, Any], **kwargs: Any) -> Any:
        pairs = [
            (k, str(v)) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])
        ]
        return await self.fetch(API, *parts, params=pairs, **kwargs)

    def get(self, *parts: str, **params: Any) -> Any:
        response = self.run(self._request(parts, params))
        assert response.code == 200
        return json.loads(response.body)

    def rows(self, **params: Any) -> list[dict[str, Any]]:
        """The rows of ``GET jobs`` (its first page: every test here has fewer jobs)."""
        page = self.get("jobs", **params)
        assert page["total"] == len(page["jobs"]) or page["total"] > page["limit"], page
        rows: list[dict[str, Any]] = page["jobs"]
        return rows

    def post(self, *parts: str, body: Any) -> Any:
        response = self.run(self._request(parts, {}, method="POST", body=json.dumps(body)))
        assert response.code == 200
        return json.loads(response.body)

    def status(self, *parts: str, params: dict[str, Any] | None = None, **kwargs: Any) -> int:
        try:
            response = self.run(self._request(parts, params or {}, **kwargs))
        except HTTPClientError as error:
            return error.code
        return int(response.code)


@pytest.fixture(name="api")
def api_fixture(jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Api:
    return Api(jp_fetch, jp_asyncio_loop)


def row_of(rows: list[dict[str, Any]], job: submitit.Job[Any]) -> dict[str, Any]:
    matches = [row for row in rows if row["id"] == job.job_id and row["folder"] == _real(job)]
    assert len(matches) == 1, rows
    return matches[0]


def _real(job: submitit.Job[Any]) -> str:
    return os.path.realpath(job.paths.folder)


# -- listing --------------------------------------------------------------------------------------


def test_list_shows_every_job_newest_first_and_survives_a_corrupt_one(
    api: Api, executor: submitit.LocalExecutor, job_folder: Path
) -> None:
    executor.update_parameters(name="hello")
    done = executor.submit(print, "hello from the job")
    done.wait(WAIT_S)
    executor.update_parameters(name="train")
    live = running(executor)
    (job_folder / "L999_job.json").write_text("{not json")  # a corrupt job

    rows = api.rows()

    # Newest first (by when each marker file was written: the corrupt one last).
    assert [row["id"] for row in rows] == ["L999", live.job_id, done.job_id]
    row = row_of(rows, live)
    assert row["name"] == "train"
    assert row["backend"] == "local"
    assert row["state"] == "RUNNING"
    assert row["requeues"] == 0
    assert row["elapsed_s"] is not None and row["elapsed_s"] >= 0
    assert row["last_event"]["event"] == "started"
    finished = row_of(rows, done)
    assert (finished["name"], finished["state"]) == ("hello", "COMPLETED")
    broken = [row for row in rows if row["id"] == "L999"]
    assert len(broken) == 1 and "JobFolderError" in broken[0]["error"]


def test_discovery_walks_the_root_but_not_hidden_or_tool_folders(
    api: Api, jp_root_dir: Path
) -> None:
    places = {
        "deep": jp_root_dir / "a" / "b" / "c" / "jobs",
        "hidden": jp_root_dir / ".cache" / "jobs",
        "node_modules": jp_root_dir / "web" / "node_modules" / "jobs",
        "too_deep": jp_root_dir.joinpath(*"abcdefgh") / "jobs",
    }
    ids = {}
    for label, folder in places.items():
        job = submitit.LocalExecutor(folder).submit(print, label)
        job.wait(WAIT_S)
        ids[label] = (job.job_id, os.path.realpath(folder))

    listed = {(row["id"], row["folder"]) for row in api.rows()}

    assert ids["deep"] in listed
    assert ids["hidden"] not in listed
    assert ids["node_modules"] not in listed
    assert ids["too_deep"] not in listed
    # The job folders of the sidebar's setting narrow the listing to them.
    only = api.rows(folder="a/b")
    assert [(row["id"], row["folder"]) for row in only] == [ids["deep"]]


def test_parallel_list_requests_share_one_scheduler_refresh(
    api: Api, jp_serverapp: Any, executor: submitit.LocalExecutor
) -> None:
    running(executor)
    service: JobService = jp_serverapp.web_app.settings[SETTINGS_KEY]
    service.config.min_poll_interval_s = 60.0
    service.invalidate()
    before = service.refreshes

    responses = api.run(asyncio.gather(*(api.fetch(API, "jobs") for _ in range(100))))

    assert all(response.code == 200 for response in responses)
    assert service.refreshes - before == 1
    api.rows()  # within the interval: the cached listing
    assert service.refreshes - before == 1


# -- one job ---------------------------------------------------------------------------------


def test_events_and_log_tail(api: Api, executor: submitit.LocalExecutor) -> None:
    job = executor.submit(print, "\n".join(f"line {i}" for i in range(50)))
    job.wait(WAIT_S)
    folder = _real(job)

    events = api.get("jobs", job.job_id, "events", folder=folder)
    assert [event["event"] for event in events][:2] == ["submitted", "started"]
    assert events[-1]["event"] == "completed"

    tail = api.get("jobs", job.job_id, "log", folder=folder, lines=3)
    assert tail["stream"] == "out"
    assert tail["text"].splitlines() == ["line 47", "line 48", "line 49"]
    errors = api.get("jobs", job.job_id, "log", folder=folder, stream="err")
    assert errors["stream"] == "err" and "line 49" not in (errors["text"] or "")


def test_rows_carry_progress_and_logs_read_like_a_terminal(
    api: Api, executor: submitit.LocalExecutor, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    stepper = executor.submit(Stepper(), 200, str(release), 50)
    looping = executor.submit(tqdm_loop, 200, str(release), 120)

    def progress_at(job: submitit.Job[Any], step: int) -> dict[str, Any] | None:
        row = row_of(api.rows(), job)
        progress = row["progress"]
        return row if progress is not None and progress["step"] == step else None

    reported = wait_for(lambda: progress_at(stepper, 50), "the reported step 50", WAIT_S)
    assert reported["progress"]["fraction"] == 0.25 and reported["progress"]["source"] == "report"
    assert reported["run_elapsed_s"] == reported["elapsed_s"]  # one run so far
    logged = wait_for(lambda: progress_at(looping, 120), "the tqdm bar at 120", WAIT_S)
    assert (logged["progress"]["total"], logged["progress"]["source"]) == (200, "log")
    assert logged["progress"]["desc"] == "train"

    folder = _real(looping)
    errors = api.get("jobs", looping.job_id, "log", folder=folder, stream="err", lines=50)
    bars = [line for line in errors["text"].splitlines() if line.startswith("train:")]
    assert len(bars) == 1 and "120/200" in bars[0]  # one line, not 120 redraws
    output = api.get("jobs", looping.job_id, "log", folder=folder, stream="out")
    assert output["text"] == "training started on the local backend"
    assert '<span style="color:#00a250;font-weight:bold">training started</span>' in output["html"]

    release.touch()
    stepper.result(WAIT_S)
    looping.result(WAIT_S)
    finished = wait_for(lambda: progress_at(stepper, 200), "the last step", WAIT_S)
    assert finished["state"] == "COMPLETED" and finished["ended_at"] is not None
    assert finished["elapsed_s"] == round(finished["ended_at"] - finished["started_at"], 1)


def test_simulate_preemption_then_timeout_requeue_the_job(
    api: Api, executor: submitit.LocalExecutor
) -> None:
    job = running(executor)
    folder = _real(job)

    answer = api.post("jobs", job.job_id, "interrupt", body={"folder": folder, "timeout": False})
    assert answer == {"id": job.job_id, "action": "preemption", "ok": True}

    def requeued(count: int) -> dict[str, Any] | None:
        row = row_of(api.rows(), job)
        return row if row["requeues"] == count and row["state"] == "RUNNING" else None

    row = wait_for(lambda: requeued(1), "the preempted job to run again", WAIT_S)
    assert (row["preemptions"], row["timeouts"], row["runs"]) == (1, 0, 2)

    api.post("jobs", job.job_id, "interrupt", body={"folder": folder, "timeout": True})
    row = wait_for(lambda: requeued(2), "the timed-out job to run again", WAIT_S)
    assert (row["preemptions"], row["timeouts"]) == (1, 1)
    reasons = [e.get("reason") for e in job.events() if e["event"] == "signal"]
    assert reasons == ["preemption", "timeout"]


def test_cancel_ends_the_job(api: Api, executor: submitit.LocalExecutor) -> None:
    job = running(executor)
    pid = job.events()[-1]["pid"]

    answer = api.post("jobs", job.job_id, "cancel", body={"folder": _real(job)})

    assert answer["state"] == "CANCELLED"
    assert row_of(api.rows(), job)["state"] == "CANCELLED"
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the job's process to end", WAIT_S)


def test_a_cancelled_job_is_resubmitted_from_the_sidebar(
    api: Api, executor: submitit.LocalExecutor
) -> None:
    job = running(executor)
    body = {"folder": _real(job)}
    assert api.status("jobs", job.job_id, "resubmit", method="POST", body=json.dumps(body)) == 409
    api.post("jobs", job.job_id, "cancel", body=body)
    answer = api.post("jobs", job.job_id, "resubmit", body=body)
    assert answer["ok"] and answer["new_id"] != job.job_id
    again = submitit.Job(job.paths.folder, answer["new_id"])
    assert again.info.resubmission_of == job.job_id
    assert row_of(api.rows(), job)["resubmitted_as"] == answer["new_id"]
    again.cancel()


def test_interrupting_a_finished_job_is_a_conflict(
    api: Api, executor: submitit.LocalExecutor
) -> None:
    job = executor.submit(print, "done")
    job.wait(WAIT_S)
    body = json.dumps({"folder": _real(job)})
    assert api.status("jobs", job.job_id, "interrupt", method="POST", body=body) == 409


# -- refusals ----------------------------------------------------------------------------------


def test_every_verb_needs_the_token(api: Api, executor: submitit.LocalExecutor) -> None:
    job = running(executor)
    folder = _real(job)
    body = json.dumps({"folder": folder})
    calls: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (("jobs",), {}),
        (("jobs", job.job_id, "events"), {"params": {"folder": folder}}),
        (("jobs", job.job_id, "log"), {"params": {"folder": folder}}),
        (("jobs", job.job_id, "interrupt"), {"method": "POST", "body": body}),
        (("jobs", job.job_id, "cancel"), {"method": "POST", "body": body}),
        (("jobs", job.job_id, "resubmit"), {"method": "POST", "body": body}),
        (("jobs", "clean"), {"method": "POST", "body": json.dumps({"older_than_s": 0})}),
    ]
    for parts, kwargs in calls:
        assert api.status(*parts, headers={"Authorization": ""}, **kwargs) == 403, parts
    assert job.state == "RUNNING" and job.summary().preemptions == 0  # nothing happened
    for parts, kwargs in calls[:3]:  # the same reads with the token are answered
        assert api.status(*parts, **kwargs) == 200, parts


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            **SERVER_CONFIG,
            "ServerApp": {**SERVER_CONFIG["ServerApp"], "authorizer_class": ReadOnlyAuthorizer},
        }
    ],
)
def test_the_authorizer_decides_who_may_act(api: Api, executor: submitit.LocalExecutor) -> None:
    job = running(executor)
    body = json.dumps({"folder": _real(job)})
    assert api.status("jobs") == 200
    assert api.status("jobs", job.job_id, "interrupt", method="POST", body=body) == 403
    assert api.status("jobs", job.job_id, "cancel", method="POST", body=body) == 403
    assert api.status("jobs", "clean", method="POST", body=json.dumps({"dry_run": True})) == 403
    assert job.state == "RUNNING" and job.summary().preemptions == 0


def test_bad_ids_are_refused_before_any_file_is_read(api: Api) -> None:
    for bad in ("not-an-id", "L1;ls", "..", "1_2_3", "L" * 80):
        for action in ("events", "log"):
            code = api.status("jobs", bad, action, params={"folder": "project"})
            assert code == 400, (bad, action)
        body = json.dumps({"folder": "project"})
        assert api.status("jobs", bad, "cancel", method="POST", body=body) == 400, bad


def test_folders_outside_the_roots_are_refused(
    api: Api, executor: submitit.LocalExecutor, jp_root_dir: Path, tmp_path: Path
) -> None:
    job = executor.submit(print, "inside")
    job.wait(WAIT_S)
    outside = tmp_path / "outside"
    outside_job = submitit.LocalExecutor(outside).submit(print, "outside")
    outside_job.wait(WAIT_S)
    (jp_root_dir / "link").symlink_to(outside, target_is_directory=True)
    attempts = [
        str(outside),  # absolute, outside
        "../outside",  # relative traversal
        "project/slurm_jobs/../../../outside",
        "link",  # a symlink that leads out
        "/etc",
        "/",
    ]
    for folder in attempts:
        params = {"folder": folder}
        assert api.status("jobs", outside_job.job_id, "events", params=params) in (400, 404)
        body = json.dumps(params)
        code = api.status("jobs", outside_job.job_id, "cancel", method="POST", body=body)
        assert code in (400, 404), folder
        assert api.status("jobs", params=params) in (400, 404), folder
    assert outside_job.state == "COMPLETED" and "cancelled" not in str(outside_job.events())
    # A traversal hidden in the id itself is a bad id.
    assert api.status("jobs", "..%2F..%2Fetc", "events", params={"folder": "project"}) == 400
    # The relative name inside the root works; the listing never shows the outside job.
    params = {"folder": "project/slurm_jobs"}
    assert api.status("jobs", job.job_id, "events", params=params) == 200
    listed = {(row["id"], row["folder"]) for row in api.rows()}
    assert (outside_job.job_id, os.path.realpath(outside)) not in listed


def test_a_folder_others_can_write_is_never_read(
    api: Api, executor: submitit.LocalExecutor, job_folder: Path
) -> None:
    job = executor.submit(print, "x")
    job.wait(WAIT_S)
    job_folder.chmod(0o777)
    try:
        params = {"folder": _real(job)}
        assert api.status("jobs", job.job_id, "events", params=params) == 403
        row = row_of(api.rows(), job)
        assert row["state"] == "UNKNOWN" and "writable by others" in row["error"]
    finally:
        job_folder.chmod(0o700)


def test_malformed_requests_are_400(api: Api, executor: submitit.LocalExecutor) -> None:
    job = executor.submit(print, "x")
    job.wait(WAIT_S)
    folder = _real(job)
    interrupt = ("jobs", job.job_id, "interrupt")
    bodies = [
        "not json",
        "[1]",
        json.dumps({"folder": folder, "timeout": "yes"}),
        json.dumps({"folder": 3}),
        json.dumps({}),
    ]
    for body in bodies:
        assert api.status(*interrupt, method="POST", body=body) == 400, body
    log = ("jobs", job.job_id, "log")
    for params in ({"stream": "in"}, {"lines": 0}, {"lines": "ten"}, {"task": 5}):
        assert api.status(*log, params={"folder": folder, **params}) == 400, params
    assert api.status("jobs", "L12345", "events", params={"folder": folder}) == 404


def test_a_row_is_the_snapshot_the_widget_shows(
    api: Api, executor: submitit.LocalExecutor, job_folder: Path
) -> None:
    # One snapshot for the kernel's views and the sidebar (views.status), read here as the
    # server reads it: read_only, nothing unpickled.
    job = executor.submit(pow, 3, 3)
    assert job.result(timeout=WAIT_S) == 27
    row = row_of(api.rows(), job)
    viewed = submitit.Job(job_folder, job.job_id)
    viewed.read_only = True
    status = collect_status(viewed, details=False)
    times = status.times
    assert (row["state"], row["name"], row["backend"], row["runs"], row["num_tasks"]) == (
        status.state, status.name, status.backend, status.runs, status.num_tasks
    )
    assert (row["submitted_at"], row["started_at"], row["ended_at"]) == (
        status.submitted_at, times.started_at, times.ended_at
    )
    assert row["last_event"] == status.last_event and row["last_event"]["event"] == "completed"
    assert status.result == "<not loaded here: call job.result() to load it>"


# -- reads only -----------------------------------------------------------------------------------


class Trap:
    """Unpickling it creates ``marker``: it shows whether the server unpickled a result."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def test_reads_never_unpickle_delete_or_record(
    api: Api, executor: submitit.LocalExecutor, job_folder: Path, tmp_path: Path
) -> None:
    # A finished job whose end event is missing (its worker was killed right after writing the
    # result): only the result pickle could tell success from failure.
    finished = executor.submit(pow, 2, 5)
    assert finished.result(timeout=WAIT_S) == 32
    marker = tmp_path / "result-unpickled"
    payload.dump(("success", Trap(marker)), finished.paths.result_pickle)
    lines = finished.paths.events.read_text().splitlines(keepends=True)
    finished.paths.events.write_text("".join(ln for ln in lines if '"completed"' not in ln))
    # A job whose processes were all killed, with a temporary its writer left behind.
    dead = running(executor)
    worker = int(dead.events()[-1]["pid"])
    os.kill(int(json.loads(dead.paths.local_process.read_text())["pid"]), signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{worker}").exists(), "the worker to die", WAIT_S)
    temporary = job_folder / f".tmp-{dead.job_id}_0_result.pkl.deadbeef"
    temporary.write_bytes(b"partial")
    before = {path: path.read_bytes() for path in job_folder.iterdir() if path.is_file()}

    rows = api.rows()
    for job in (finished, dead):
        params = {"folder": _real(job)}
        api.get("jobs", job.job_id, "events", **params)
        api.get("jobs", job.job_id, "log", **params)

    assert not marker.exists()  # before the fix: unpickled inside the Jupyter server
    assert temporary.exists()  # before the fix: deleted by the listing
    assert {path: path.read_bytes() for path in job_folder.iterdir() if path.is_file()} == before
    assert row_of(rows, dead)["state"] == "FAILED"
    viewed = submitit.Job(job_folder, finished.job_id)
    viewed.read_only = True  # as the server opens jobs: its status snapshot unpickles nothing
    assert collect_status(viewed).state == "FAILED" and not marker.exists()
    # The user's own process may record and tidy: it is the one that runs the user's code.
    assert submitit.Job(job_folder, dead.job_id).state == "FAILED"
    assert not temporary.exists()
