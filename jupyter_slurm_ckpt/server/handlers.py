"""REST handlers under ``{base_url}/jupyter-slurm-ckpt/``; every verb is authenticated.

- ``GET  jobs[?folder=F...][&offset=O&limit=L][&state=S...][&name=N][&q=TEXT]``   a page of the
  jobs, newest first: ``{"jobs": [rows], "total": matching, "offset", "limit", "all": in the
  folders, "counts": {state: n} | null, "names": [[name, n]] | null, "partial": bool}``
- ``GET  jobs/<id>/events?folder=F``                   the job's events (JSON list)
- ``GET  jobs/<id>/log?folder=F&stream=out|err&lines=N[&task=T]``   a log tail, as a terminal
  shows it: ``text`` (plain) and ``html`` (escaped, ANSI colours as inline styles)
- ``POST jobs/<id>/interrupt``  body ``{"folder": F, "timeout": false}``
- ``POST jobs/<id>/cancel``     body ``{"folder": F}``
- ``POST jobs/<id>/resubmit``   body ``{"folder": F}``
- ``POST jobs/clean``           body ``{"folders": [F...], "older_than_s": S, "states": [...],
  "dry_run": bool}``: remove the files of jobs that ended (never of a live one)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..views.listing import JobFilter
from .jobs import JobRequestError, JobService, check_job_id
from .listing import PageQuery

NAMESPACE = "jupyter-slurm-ckpt"
#: The resource name the authorizer sees (``read`` for GET, ``write`` for POST).
AUTH_RESOURCE = "slurm_jobs"
SETTINGS_KEY = "jupyter_slurm_ckpt_jobs"

_ID = r"(?P<job_id>[^/]+)"
#: Jobs a page holds unless the client asks for another number (``limit``).
PAGE_SIZE = 50


class _Handler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> JobService:
        service: JobService = self.settings[SETTINGS_KEY]
        return service

    async def answer(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` and answer its result as JSON, or the refusal as a one-line error."""
        try:
            result = await work()
        except JobRequestError as error:
            raise web.HTTPError(error.status, error.message) from None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result, default=str))

    def body(self) -> dict[str, Any]:
        """The JSON object of a POST body (empty body: ``{}``)."""
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data

    def folder_from(self, data: dict[str, Any]) -> str | None:
        folder = data.get("folder", self.get_query_argument("folder", None))
        if folder is not None and not isinstance(folder, str):
            raise web.HTTPError(400, "folder must be a string")
        return folder

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be a whole number") from None
        if not low <= value <= high:
            raise web.HTTPError(400, f"{name} must be between {low} and {high}")
        return value


class JobsHandler(_Handler):
    """``GET jobs``: a page of the jobs below the job roots (or below the given folders)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        service = self.service
        limit = self.int_argument("limit", PAGE_SIZE, 0, service.config.max_page_size)
        wanted = JobFilter.of(
            [word for state in self.get_query_arguments("state") for word in state.split(",")],
            self.get_query_argument("name", None),
            self.get_query_argument("q", None),
        )
        query = PageQuery(self.int_argument("offset", 0, 0, 10**9), limit, wanted)

        async def work() -> dict[str, Any]:
            scope = service.scope(self.get_query_arguments("folder"))
            return await service.list_jobs(scope, query)

        await self.answer(work)


class CleanHandler(_Handler):
    """``POST jobs/clean``: remove the files of jobs that ended long enough ago."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        data = self.body()
        folders = data.get("folders", [])
        states = data.get("states", [])
        older_than = data.get("older_than_s", 0)
        dry_run = data.get("dry_run", False)
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise web.HTTPError(400, "folders must be a list of folder names")
        if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
            raise web.HTTPError(400, "states must be a list of job states")
        if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
            raise web.HTTPError(400, "older_than_s must be a number of seconds")
        if older_than < 0:
            raise web.HTTPError(400, "older_than_s must be 0 or more")
        if not isinstance(dry_run, bool):
            raise web.HTTPError(400, "dry_run must be true or false")
        service = self.service

        async def work() -> dict[str, Any]:
            scope = service.scope(folders)
            return await service.run(service.clean, scope, float(older_than), states, dry_run)

        await self.answer(work)


class EventsHandler(_Handler):
    """``GET jobs/<id>/events``: the job's event log."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        check_id(job_id)
        folder = self.folder_from({})
        await self.answer(lambda: self.service.run(self.service.events, folder, job_id))


class LogHandler(_Handler):
    """``GET jobs/<id>/log``: the tail of a task's stdout or stderr (``\r`` redraws applied)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        check_id(job_id)
        folder = self.folder_from({})
        stream = self.get_query_argument("stream", "out")
        if stream not in ("out", "err"):
            raise web.HTTPError(400, "stream must be out or err")
        lines = self.int_argument("lines", 200, 1, 10000)
        task = self.int_argument("task", 0, 0, 1_000_000)
        service = self.service
        await self.answer(
            lambda: service.run(service.log_tail, folder, job_id, stream, lines, task)
        )


class InterruptHandler(_Handler):
    """``POST jobs/<id>/interrupt``: simulate a preemption, or a timeout."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        check_id(job_id)
        data = self.body()
        folder = self.folder_from(data)
        timeout = data.get("timeout", False)
        if not isinstance(timeout, bool):
            raise web.HTTPError(400, "timeout must be true or false")
        service = self.service
        await self.answer(lambda: service.run(service.interrupt, folder, job_id, timeout))


class _JobActionHandler(_Handler):
    """``POST jobs/<id>/<action>``: the service's method ``action`` on the job, no arguments."""

    action: ClassVar[str]

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        check_id(job_id)
        folder = self.folder_from(self.body())
        service = self.service
        act = getattr(service, self.action)
        await self.answer(lambda: service.run(act, folder, job_id))


class CancelHandler(_JobActionHandler):
    """``POST jobs/<id>/cancel``: cancel the job."""

    action = "cancel"


class ResubmitHandler(_JobActionHandler):
    """``POST jobs/<id>/resubmit``: a new job that continues an ended one from its last
    checkpoint (``job.resubmit()``; it is submitted from the Jupyter server's environment)."""

    action = "resubmit"


def check_id(job_id: str) -> None:
    """400 for anything that is not a job id (before any file is looked at)."""
    try:
        check_job_id(job_id)
    except JobRequestError as error:
        raise web.HTTPError(error.status, error.message) from None


def routes(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """The URL patterns of the extension below the server's ``base_url``."""
    prefix = url_path_join(base_url, NAMESPACE, "jobs")
    return [
        (prefix + r"/?", JobsHandler),
        (url_path_join(prefix, "clean"), CleanHandler),
        (url_path_join(prefix, _ID, "events"), EventsHandler),
        (url_path_join(prefix, _ID, "log"), LogHandler),
        (url_path_join(prefix, _ID, "interrupt"), InterruptHandler),
        (url_path_join(prefix, _ID, "cancel"), CancelHandler),
        (url_path_join(prefix, _ID, "resubmit"), ResubmitHandler),
    ]
