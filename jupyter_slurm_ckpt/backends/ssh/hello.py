"""What the remote side says first, and the versions checked before anything is submitted.

Classes defined in a notebook travel by value (cloudpickle): the cluster's Python must be of the
same minor version as the kernel's, and its cloudpickle the same release. The remote side
states its versions when a session starts (:func:`hello`); :func:`check` compares them with this
kernel's and says what to install where.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from typing import Any

import cloudpickle

from ..._version import __version__
from ...core.payload import PYTHON_VERSION
from .protocol import PROTOCOL_VERSION

PACKAGE = "jupyter_slurm_ckpt"


class RemoteEnvironmentError(RuntimeError):
    """The cluster's Python environment cannot run this kernel's jobs (the message says what
    to install where)."""


def hello() -> dict[str, Any]:
    """The remote side's first message: who and what it is."""
    return {
        "op": "hello",
        "protocol": PROTOCOL_VERSION,
        "package": __version__,
        "python": PYTHON_VERSION,
        "cloudpickle": cloudpickle.__version__,
        "executable": sys.executable,
        "home": os.path.expanduser("~"),
        "host": socket.gethostname(),
        "sbatch": shutil.which("sbatch") is not None,
    }


def _series(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def check(answer: dict[str, Any], where: str, python: str) -> None:
    """Refuse a remote side this kernel cannot submit to, saying what to install where.

    Raises
    ------
    RemoteEnvironmentError
        Another protocol, another Python minor version, another cloudpickle release.
    """
    install = (
        f"on {where}, make an environment with Python {_series(PYTHON_VERSION)} and run "
        f"`python -m pip install {PACKAGE}=={__version__} cloudpickle=={cloudpickle.__version__}`"
        f" in it, then point SlurmMagics.remote_python (AutoExecutor: ssh_python) at its "
        "python"
    )
    theirs = (
        f"{python} on {where} runs Python {answer.get('python')} with cloudpickle "
        f"{answer.get('cloudpickle')} and {PACKAGE} {answer.get('package')}"
    )
    ours = (
        f"this kernel runs Python {PYTHON_VERSION} with cloudpickle {cloudpickle.__version__} "
        f"and {PACKAGE} {__version__}"
    )
    if answer.get("protocol") != PROTOCOL_VERSION:
        raise RemoteEnvironmentError(
            f"{theirs}, which speaks another protocol than {ours}: {install}"
        )
    if _series(str(answer.get("python"))) != _series(PYTHON_VERSION):
        raise RemoteEnvironmentError(
            f"{theirs}, but {ours}: classes defined in a notebook are pickled by value and "
            f"need the same Python minor version; {install}"
        )
    if answer.get("cloudpickle") != cloudpickle.__version__:
        raise RemoteEnvironmentError(
            f"{theirs}, but {ours}: payloads need the same cloudpickle on both sides; "
            f"{install}, or install cloudpickle=={answer.get('cloudpickle')} here"
        )


def missing_package(stderr: str, where: str, python: str) -> RemoteEnvironmentError | None:
    """What the remote side's error output says is missing there, if that is the problem."""
    install = (
        f"python -m pip install {PACKAGE}=={__version__} cloudpickle=={cloudpickle.__version__}"
    )
    if f"No module named {PACKAGE}" in stderr or f"No module named '{PACKAGE}" in stderr:
        return RemoteEnvironmentError(
            f"{PACKAGE} is not installed for {python} on {where}: run `{install}` in the "
            f"environment of {python} there (Python {_series(PYTHON_VERSION)}), or point "
            "SlurmMagics.remote_python (AutoExecutor: ssh_python) at one where it is"
        )
    if "No such file or directory" in stderr or "command not found" in stderr or (
        "not found" in stderr and python in stderr
    ):
        return RemoteEnvironmentError(
            f"there is no {python} on {where}: set SlurmMagics.remote_python (AutoExecutor: "
            f"ssh_python) to the python of an environment there that has `{install}` done"
        )
    return None
