"""``<id>_job.json``: what a job is (backend, parameters), written once at submission."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MethodType
from typing import Any

from .errors import JobFolderError
from .files import atomic_write_text
from .paths import JobPaths

#: Slurm's default ``KillWait``: how long a run lives after its SIGTERM.
DEFAULT_KILL_WAIT_S = 30.0


@dataclass
class JobInfo:
    """Description of a submitted job, read by the job itself, re-attachers and the sidebar."""

    job_id: str
    cluster: str
    folder: str
    name: str = "job"
    num_tasks: int = 1
    max_num_timeout: int = 3
    timeout_min: float | None = None
    signal_delay_s: float = 90.0
    parameters: dict[str, Any] = field(default_factory=dict)
    submitted_at: float = field(default_factory=time.time)
    cwd: str = field(default_factory=os.getcwd)
    python: str = sys.executable
    host: str = field(default_factory=socket.gethostname)
    uid: int = field(default_factory=os.getuid)
    #: The job this one continues from its last checkpoint (``job.resubmit()``), if any.
    resubmission_of: str | None = None
    #: How long a run lives after the scheduler's SIGTERM, before its SIGKILL (Slurm's
    #: ``KillWait``, read from its configuration at submission); None when not known.
    kill_wait_s: float | None = None
    #: Where a job of a cluster reached over SSH really is: ``target`` (``ssh://...``), the
    #: remote ``python`` and the remote ``folder``; its folder here is a local copy (see
    #: ``backends.ssh.mirror``). None for every other job.
    remote: dict[str, str] | None = None
    #: Elements of the job array this job belongs to (0: not an array element). The elements
    #: of an array share one description file (hard links): ``job_id`` is then the array's id,
    #: and :meth:`read` gives each element its own, the one its file's name says.
    array_size: int = 0

    def effective_signal_delay_s(self) -> float:
        """The warning delay actually used: at most half of a short time limit."""
        if self.timeout_min is None:
            return self.signal_delay_s
        return min(self.signal_delay_s, self.timeout_min * 60.0 / 2.0)

    def termination_window_s(self) -> float:
        """How long a SIGTERM leaves before the SIGKILL: :attr:`kill_wait_s`, else Slurm's
        default KillWait."""
        return DEFAULT_KILL_WAIT_S if self.kill_wait_s is None else self.kill_wait_s

    def submitted_events(self) -> list[dict[str, Any]]:
        """The ``submitted`` event of an array element, which its array's description records
        for all its elements (no element has an events file before it starts); [] else."""
        if not self.array_size:
            return []
        fields = {"cluster": self.cluster, "name": self.name, "array_size": self.array_size}
        return [{"t": self.submitted_at, "event": "submitted", **fields}]

    def write(self, path: Path) -> None:
        """Write atomically as JSON."""
        atomic_write_text(path, self.text())

    def text(self) -> str:
        """The JSON :meth:`write` writes."""
        return json.dumps(asdict(self), indent=1, default=str)

    @classmethod
    def read(cls, path: Path) -> JobInfo:
        """Read a job description, naming the file when it is missing or broken."""
        raw = cls.read_fields(path)
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @staticmethod
    def read_fields(path: str | Path) -> dict[str, Any]:
        """A job description's fields as stored, an array element's id taken from its file's
        name (what :meth:`read` checks and builds on; a listing of thousands of jobs reads just
        these)."""
        try:
            with open(path, "rb") as stream:
                raw = json.loads(stream.read())
        except FileNotFoundError:
            raise JobFolderError(f"{path} does not exist: no such job in this folder") from None
        except ValueError as error:
            raise JobFolderError(f"{path} is not valid JSON ({error})") from None
        if not isinstance(raw, dict) or "job_id" not in raw or "cluster" not in raw:
            raise JobFolderError(f"{path} is not a job description")
        named = JobPaths.job_id_of(Path(path).name)
        if raw.get("array_size") and named and named.partition("_")[0] == raw["job_id"]:
            raw["job_id"] = named  # an element's link to its array's description
        return raw


def callable_name(function: Any) -> str:
    """A job name for a callable: its function name or its class name."""
    if isinstance(function, MethodType):
        function = function.__func__
    name = getattr(function, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        name = type(function).__name__ if name is None else "lambda"
    return re.sub(r"[^\w.-]", "_", name)[:64] or "job"
