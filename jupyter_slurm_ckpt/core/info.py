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

    def effective_signal_delay_s(self) -> float:
        """The warning delay actually used: at most half of a short time limit."""
        if self.timeout_min is None:
            return self.signal_delay_s
        return min(self.signal_delay_s, self.timeout_min * 60.0 / 2.0)

    def termination_window_s(self) -> float:
        """How long a SIGTERM leaves before the SIGKILL: :attr:`kill_wait_s`, else Slurm's
        default KillWait."""
        return DEFAULT_KILL_WAIT_S if self.kill_wait_s is None else self.kill_wait_s

    def write(self, path: Path) -> None:
        """Write atomically as JSON."""
        atomic_write_text(path, json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def read(cls, path: Path) -> JobInfo:
        """Read a job description, naming the file when it is missing or broken."""
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise JobFolderError(f"{path} does not exist: no such job in this folder") from None
        except ValueError as error:
            raise JobFolderError(f"{path} is not valid JSON ({error})") from None
        known = {name for name in cls.__dataclass_fields__}
        if not isinstance(raw, dict) or "job_id" not in raw or "cluster" not in raw:
            raise JobFolderError(f"{path} is not a job description")
        return cls(**{k: v for k, v in raw.items() if k in known})


def callable_name(function: Any) -> str:
    """A job name for a callable: its function name or its class name."""
    if isinstance(function, MethodType):
        function = function.__func__
    name = getattr(function, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        name = type(function).__name__ if name is None else "lambda"
    return re.sub(r"[^\w.-]", "_", name)[:64] or "job"
