"""The built wheel: a plain ``pip install`` into a fresh venv enables both extensions.

Builds the wheel the way a release does (``python -m build``: the jupyter-builder hook builds the
labextension with npm unless it is already built), checks what it ships, installs it with its
``notebook`` extra into a new venv with node hidden from PATH, and asks ``jupyter labextension
list`` and ``jupyter server extension list`` there. Needs PyPI (or a warm pip cache).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEXTENSION = "share/jupyter/labextensions/jupyter-slurm-ckpt"


def run(*command: str | Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} failed:\n{output[-4000:]}"
    return output


def plain_path(tmp_path: Path, venv: Path) -> str:
    """A PATH with the venv and the usual tools but no node or npm (pip must not need them)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sh", "bash", "uname", "cat", "ls", "env", "git"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    return f"{venv / 'bin'}:{tools}"


@pytest.mark.timeout(1800)
def test_wheel_install_enables_the_lab_and_server_extensions(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("jupyter_slurm_ckpt-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    data = next(name.split("/data/")[0] for name in names if "/data/" in name) + "/data/"
    shipped = {name[len(data) :] for name in names if name.startswith(data)}
    assert f"{LABEXTENSION}/package.json" in shipped
    assert f"{LABEXTENSION}/install.json" in shipped
    assert f"{LABEXTENSION}/schemas/jupyter-slurm-ckpt/sidebar.json" in shipped
    assert any(re.match(rf"{LABEXTENSION}/static/remoteEntry\.\w+\.js$", n) for n in shipped)
    assert "etc/jupyter/jupyter_server_config.d/jupyter_slurm_ckpt.json" in shipped
    assert "jupyter_slurm_ckpt/server/handlers.py" in names
    assert not [n for n in names if "node_modules" in n or n.startswith("jupyter_slurm_ckpt/lab")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "PYTHON", "VIRTUAL_ENV", "PIP_"))
    }
    env.update(HOME=str(home), PATH=plain_path(tmp_path, venv), PIP_DISABLE_PIP_VERSION_CHECK="1")
    assert shutil.which("node", path=env["PATH"]) is None
    run(venv / "bin" / "pip", "install", "-q", f"{wheel}[notebook]", env=env)

    labextensions = run(venv / "bin" / "jupyter", "labextension", "list", env=env)
    assert re.search(
        r"jupyter-slurm-ckpt v0\.1\.0 .*enabled.*OK.*\(python, jupyter_slurm_ckpt\)",
        labextensions,
    ), labextensions
    extensions = run(venv / "bin" / "jupyter", "server", "extension", "list", env=env)
    assert re.search(r"jupyter_slurm_ckpt\.server .*enabled", extensions), extensions
    assert re.search(r"jupyter_slurm_ckpt\.server 0\.1\.0 .*OK", extensions), extensions
    assert str(venv) in extensions  # enabled by the config file the wheel put in the venv
