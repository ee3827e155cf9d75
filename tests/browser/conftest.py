"""Shared fixtures of the browser tests: JupyterLab and Notebook 7 from PyPI on localhost,
Debian's chromium.

- ``lab``: a JupyterLab server (token auth, private config/data/settings folders) serving the
  repository's freshly built labextension and the ``jupyter_slurm_ckpt.server`` extension.
- ``notebook7``: the same, served by Notebook 7 (``jupyter notebook``).
- ``page``: a Playwright page in ``/usr/bin/chromium`` (``apt-get install -y chromium``; no
  browser download, ever).
- ``screenshots``: where a test saves what a person would see (``out/browser/<test>/``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import cancel_leftover_jobs

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "labextension"
BUILT = ROOT / "jupyter_slurm_ckpt" / "labextension"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_S = 180.0  # generous: JupyterLab, jobs and other engineers' tests share 2 cores


@dataclass
class Lab:
    """A running Jupyter server (JupyterLab or Notebook 7): its URL, token and root folder."""

    url: str
    token: str
    root: Path

    def open_url(self, path: str = "lab") -> str:
        """The browser URL of ``path`` with the token."""
        return f"{self.url}/{path}?token={self.token}"


def _newest_source_mtime() -> float:
    files = [SOURCES / "package.json", SOURCES / "package-lock.json"]
    for folder in ("src", "schema", "style"):
        files += [p for p in (SOURCES / folder).rglob("*") if "__tests__" not in p.parts]
    return max(p.stat().st_mtime for p in files if p.is_file())


def _is_fresh() -> bool:
    marker = BUILT / "package.json"
    return marker.exists() and marker.stat().st_mtime >= _newest_source_mtime()


@pytest.fixture(scope="session")
def built_labextension() -> Path:
    """The repository's prebuilt labextension, (re)built with npm when sources are newer."""
    if _is_fresh():
        return BUILT
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to build the labextension (apt-get install -y nodejs npm)")
    lock_path = ROOT / "out" / ".labextension-build.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it right now
        if _is_fresh():
            return BUILT
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        steps = [[npm, "run", "build:prod"]]
        if not (SOURCES / "node_modules").exists():
            steps.insert(0, [npm, "ci", "--no-audit", "--no-fund"])
        for step in steps:
            done = subprocess.run(step, cwd=SOURCES, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(step)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return BUILT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_settings(settings: Path) -> None:
    quiet = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    quiet.parent.mkdir(parents=True)
    quiet.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    sidebar = settings / "jupyter-slurm-ckpt" / "sidebar.jupyterlab-settings"
    sidebar.parent.mkdir(parents=True)
    sidebar.write_text(json.dumps({"refreshInterval": 1}))


def _wait_for_server(url: str, token: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the Jupyter server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=5) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the Jupyter server did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path: Path, built_labextension: Path) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 with this repository's sidebar and server extension."""
    with _serve(tmp_path, built_labextension, "jupyterlab", "LabApp") as server:
        yield server


@pytest.fixture
def notebook7(tmp_path: Path, built_labextension: Path) -> Iterator[Lab]:
    """Notebook 7 on 127.0.0.1 with this repository's sidebar and server extension."""
    with _serve(tmp_path, built_labextension, "notebook", "JupyterNotebookApp") as server:
        yield server


@contextlib.contextmanager
def _serve(tmp_path: Path, built_labextension: Path, module: str, app: str) -> Iterator[Lab]:
    """Run ``python -m <module>`` (whose application class is ``app``) until the block ends."""
    root = tmp_path / "root"
    root.mkdir()
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_slurm_ckpt.server": True}}})
    )
    # On JUPYTER_PATH, searched before every other place (the venv may hold an older build):
    # both front ends load and serve it from there.
    labextensions = tmp_path / "jupyter-path" / "labextensions"
    labextensions.mkdir(parents=True)
    (labextensions / "jupyter-slurm-ckpt").symlink_to(built_labextension)
    _write_settings(tmp_path / "settings")
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_PATH=os.pathsep.join(
            filter(None, [str(labextensions.parent), os.environ.get("JUPYTER_PATH")])
        ),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    log_path = tmp_path / f"{module}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    command = [
        sys.executable, "-m", module, "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--{app}.expose_app_in_browser=True",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, token, server, log_path)
        yield Lab(url, token, root)
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        log.close()
        cancel_leftover_jobs(root)


@pytest.fixture
def page() -> Iterator[Any]:
    """A page of Debian's chromium driven by Playwright (1400x900, generous timeouts)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or -m 'not browser')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(WAIT_S * 1000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """``out/browser/<test name>/``, emptied first (``out/`` is ignored by git)."""
    folder = ROOT / "out" / "browser" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
