"""The live widget in a real kernel (jupyter_client + ipykernel): comm messages end to end.

Nothing is mocked: a real kernel runs the extension, a real local job runs, and this test plays
the frontend by reading the widget comms on iopub and sending a button's click message.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager
from support import venv_kernel
from test_widget_helpers import submission_cells

pytestmark = pytest.mark.kernel

WAIT_S = 120.0  # generous: other engineers run tests on the same 2 cores

class Frontend:
    """Plays the frontend: keeps every widget model's state from the comm messages on iopub."""

    def __init__(self, km: KernelManager) -> None:
        self.client = km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=WAIT_S)
        self.models: dict[str, dict[str, Any]] = {}
        self.idle: set[str] = set()
        self.busy: set[str] = set()
        self.errors: list[dict[str, Any]] = []
        self.streams: list[str] = []
        self.outputs: list[tuple[str, dict[str, Any]]] = []  # (msg_type, mime bundle)
        self.log: list[tuple[str, str]] = []  # (msg_type, parent msg_id) in arrival order

    def pump(self, until: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        """Read iopub until ``until()`` holds."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; models: {self._brief()}")
            try:
                msg = self.client.get_iopub_msg(timeout=0.5)
            except Exception:  # queue.Empty
                continue
            self._take(msg)

    def _take(self, msg: dict[str, Any]) -> None:
        kind = msg["header"]["msg_type"]
        parent = msg.get("parent_header", {}).get("msg_id", "")
        content = msg["content"]
        self.log.append((kind, parent))
        if kind == "status":
            (self.idle if content["execution_state"] == "idle" else self.busy).add(parent)
        elif kind == "comm_open":
            self.models[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.models:
            data = content["data"]
            if data.get("method") in ("update", "echo_update"):
                self.models[content["comm_id"]].update(data.get("state", {}))
        elif kind == "error":
            self.errors.append(content)
        elif kind == "stream":
            self.streams.append(content["text"])
        elif kind in ("display_data", "update_display_data", "execute_result"):
            self.outputs.append((kind, content["data"]))

    def execute(self, code: str, wait: bool = True) -> str:
        msg_id: str = self.client.execute(code)
        if wait:
            self.pump(lambda: msg_id in self.idle, f"cell to finish: {code[:60]!r}")
        return msg_id

    def click(self, comm_id: str) -> None:
        """What a browser sends when a button is clicked."""
        content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
        self.client.shell_channel.send(self.client.session.msg("comm_msg", content))

    def find(self, **match: Any) -> str:
        for comm_id, state in self.models.items():
            if all(state.get(key) == value for key, value in match.items()):
                return comm_id
        raise AssertionError(f"no widget model with {match}; models: {self._brief()}")

    def _brief(self) -> str:
        keys = ("_model_name", "description", "job_state", "error", "timeline")
        return json.dumps(
            [{k: s[k] for k in keys if k in s} for s in self.models.values()], default=str
        )[:3000]


@pytest.fixture(name="frontend")
def frontend_fixture(tmp_path: Path, venv_kernel_dir: Path) -> Iterator[Frontend]:
    with venv_kernel(tmp_path, venv_kernel_dir, tmp_path / "jobs") as km:
        fe = Frontend(km)
        try:
            yield fe
        finally:
            fe.client.stop_channels()


def test_the_kernel_runs_the_ipykernel_under_test(frontend: Frontend) -> None:
    # scripts/test.sh runs the kernel tests twice: ipykernel 7 (.venv), then 6 (a second venv,
    # JSC_KERNEL_PYTHON, with JSC_KERNEL_IPYKERNEL=6 saying which major it must be).
    frontend.execute("import ipykernel; print(ipykernel.version_info[0])")
    major = int("".join(frontend.streams).split()[-1])
    assert major >= 6
    expected = os.environ.get("JSC_KERNEL_IPYKERNEL")
    if expected:
        assert major == int(expected), f"the kernel runs ipykernel {major}, not {expected}"


def _events(state: dict[str, Any]) -> list[str]:
    return [row["event"] for row in state.get("timeline", [])]


def preempt_and_see_it_resume(frontend: Frontend, widget: str, preempt: str) -> None:
    """Click *Simulate preemption*; the widget shows the signal, the checkpoint, the requeue and
    the resume, in that order, and the job running again."""
    models = frontend.models
    frontend.click(preempt)
    frontend.pump(
        lambda: "resumed" in _events(models[widget]) and models[widget]["job_state"] == "RUNNING",
        "the preemption, requeue and resume in the timeline",
    )
    events = _events(models[widget])
    assert events.index("preemption signal") < events.index("checkpoint")
    assert events.index("checkpoint") < events.index("requeued") < events.index("resumed")
    assert models[widget]["preemptions"] == 1 and models[widget]["requeues"] == 1


def test_widget_updates_while_a_cell_sleeps_and_the_button_requeues(
    frontend: Frontend, tmp_path: Path
) -> None:
    release_job = tmp_path / f"release-job-{uuid.uuid4().hex}"
    release_cell = tmp_path / f"release-cell-{uuid.uuid4().hex}"
    for cell in submission_cells(release_job):
        frontend.execute(cell)
    assert not frontend.errors, frontend.errors

    widget = frontend.find(_model_name="VBoxModel", job_name="waiter")
    preempt = frontend.find(_model_name="ButtonModel", description="Simulate preemption")
    models = frontend.models

    # The watcher moves the widget from PENDING to RUNNING on its own.
    frontend.pump(lambda: models[widget]["job_state"] == "RUNNING", "the job to run")
    frontend.pump(lambda: models[preempt]["disabled"] is False, "the button to be enabled")

    # The browser's click message: the job is signalled, checkpoints, requeues and resumes.
    preempt_and_see_it_resume(frontend, widget, preempt)
    assert models[widget]["counters"].startswith("requeued 1×: 1 preemption, 0 timeouts of 3")
    # No cell ran since: the kernel's main loop re-published the output's static fallback.
    frontend.pump(
        lambda: any(
            kind == "update_display_data" and "resumed" in data["text/html"]
            for kind, data in frontend.outputs
        ),
        "the saved output's HTML to show the resume",
    )

    # Another cell keeps the kernel busy; the job's end still reaches the widget meanwhile.
    busy_cell = frontend.execute(
        "import pathlib, time\n"
        "deadline = time.time() + 240\n"
        f"while not pathlib.Path({str(release_cell)!r}).exists() and time.time() < deadline:\n"
        "    time.sleep(0.05)\n",
        wait=False,
    )
    frontend.pump(lambda: busy_cell in frontend.busy, "the sleeping cell to start")
    release_job.touch()
    frontend.pump(lambda: models[widget]["job_state"] == "COMPLETED", "the job's end")
    assert busy_cell not in frontend.idle, "the update only came after the busy cell"
    frontend.pump(lambda: models[widget]["result"].startswith("{'ticks': "), "the result")
    release_cell.touch()
    frontend.pump(lambda: busy_cell in frontend.idle, "the sleeping cell to end")

    # The saved output's HTML fallback shows the end as well.
    updates = [data for kind, data in frontend.outputs if kind == "update_display_data"]
    assert updates and "COMPLETED" in updates[-1]["text/html"], "no refreshed fallback"
    assert "resumed" in updates[-1]["text/html"] and "COMPLETED" in updates[-1]["text/plain"]

    # ``job`` as the last expression of a cell shows the widget too.
    shown = frontend.execute("job")
    frontend.pump(lambda: frontend.outputs[-1][0] == "execute_result", "the job's display")
    data = frontend.outputs[-1][1]
    assert "application/vnd.jupyter.widget-view+json" in data, data.keys()
    assert data["text/plain"].startswith("waiter · job ") and "COMPLETED" in data["text/html"]
    assert models[data["application/vnd.jupyter.widget-view+json"]["model_id"]]["job_done"]
    assert shown in frontend.idle

    # A finished job cannot be interrupted: the error shows in the widget, not as a traceback.
    actions = frontend.find(_model_name="HBoxModel", busy=False, error="")
    frontend.pump(lambda: models[preempt]["disabled"] is True, "the buttons to be disabled")
    frontend.click(preempt)
    frontend.pump(lambda: models[actions]["error"] != "", "the action's error in the widget")
    assert models[actions]["error"].startswith("Simulate preemption failed: UncompletedJobError")
    assert "COMPLETED" in models[actions]["error"]
    frontend.execute("1")  # anything the click might have printed has arrived by now
    assert not frontend.errors, frontend.errors
    assert not [text for text in frontend.streams if "Traceback" in text], frontend.streams
