"""Permissions: private job folders and files, and folders others control are never unpickled.

Real jobs on the local backend, submitted through a real ``InteractiveShell``. The folder tests
plant *trap* pickles (unpickling one creates a marker file) and then check that the refusal
comes before any pickle is loaded: on submit, on re-attach, and in ``%slurm_jobs``; the same
trap, loaded once the folder is made safe again, does fire (the control). The server extension
is checked the same way in ``test_permissions_server.py``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from support import WAIT_S, wait_for

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.core import payload
from jupyter_slurm_ckpt.core.errors import FailedSubmissionError, JobFolderError

STEPPER = """\
import os, sys, time
from jupyter_slurm_ckpt import Checkpointable

class Stepper(Checkpointable):
    def __init__(self):
        self.steps = 0
    def __call__(self, release):
        print("run", file=sys.stderr)
        while not os.path.exists(release):
            self.steps += 1
            time.sleep(0.02)
        return self.steps
    def checkpoint(self, release):
        time.sleep(0.3)  # keeps the signal file around long enough to be seen
        return super().checkpoint(release)
"""


# -- 0700 / 0600 -------------------------------------------------------------------------------


_ID = r"L\d+(?:_\d+)?"


def _kind(relative: str) -> str:
    """A path's role, without its job id, hash or temporary suffix."""
    parts = []
    for part in relative.split("/"):
        part = re.sub(rf"^{_ID}$", "<id>", part)  # a %j folder
        part = re.sub(
            rf"^(\.tmp-)?{_ID}_(?=(submitted|events|job|local|signal)\.|\d+_(result|log))",
            r"\1<id>_",
            part,
        )
        part = re.sub(r"cell_[0-9a-f]+\.py", "cell_*.py", part)
        parts.append(re.sub(r"^(\.tmp-.+)\.[0-9a-f]{8}$", r"\1", part))
    return "/".join(parts)


class ModeAudit:
    """Polls a folder tree while jobs run: every entry seen, and every one not private."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: set[str] = set()
        self.violations: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def check(self) -> None:
        for folder, folders, files in os.walk(self.root.parent):
            for name in folders + files:
                path = Path(folder, name)
                if path != self.root and self.root not in path.parents:
                    continue
                try:
                    info = path.lstat()
                except FileNotFoundError:  # a temporary renamed meanwhile
                    continue
                relative = str(path.relative_to(self.root.parent))
                self.seen.add(_kind(relative))
                wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
                mode = stat.S_IMODE(info.st_mode)
                if mode != wanted or info.st_uid != os.getuid():
                    self.violations[relative] = f"mode {mode:o}, uid {info.st_uid}"

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            time.sleep(0.002)

    def __enter__(self) -> ModeAudit:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.check()


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def test_everything_a_job_creates_is_private(ipython: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    # umask 0: a file or folder created without an explicit private mode would be 0666/0777.
    with umask(0), ModeAudit(tmp_path / "deep") as audit:
        ipython.run(
            "%%slurm --cluster local --no-widget --timeout 5 --folder deep/nested/jobs\n"
            f"{STEPPER}job = Stepper()({str(release)!r})\n"
        )
        job = ipython.ns["job"]
        wait_for(lambda: job.state == "RUNNING", "the first run")
        job._interrupt()  # preemption: signal file, checkpoint, new payload, requeue
        wait_for(lambda: job.summary().runs == 2 and job.state == "RUNNING", "the second run")
        job._interrupt(timeout=True)
        wait_for(lambda: job.summary().runs == 3 and job.state == "RUNNING", "the third run")
        release.touch()
        assert job.result(timeout=WAIT_S) > 0
        ipython.run(
            "%%slurm --cluster local --no-widget --folder deep/per_job/%j\n"
            "def square(x):\n    return x * x\n"
            "jobs = [square(x) for x in range(3)]\n"
        )
        assert [j.result(timeout=WAIT_S) for j in ipython.ns["jobs"]] == [0, 1, 4]
        ipython.run(
            "%%slurm --cluster local --no-widget --folder deep/nested/jobs\n"
            f"job = Stepper()({str(tmp_path / 'never')!r})\n"
        )
        cancelled = ipython.ns["job"]
        wait_for(lambda: cancelled.state == "RUNNING", "the job to cancel")
        cancelled.cancel()
        assert cancelled.state == "CANCELLED"
    assert audit.violations == {}
    # The audit did see every kind of file a submission, a run and a requeue create.
    expected = {
        "deep", "deep/nested", "deep/nested/jobs", "deep/nested/jobs/cells",
        "deep/nested/jobs/cells/cell_*.py", "deep/nested/jobs/.local_job_counter",
        "deep/nested/jobs/<id>_submitted.pkl", "deep/nested/jobs/<id>_job.json",
        "deep/nested/jobs/<id>_events.jsonl", "deep/nested/jobs/<id>_local.json",
        "deep/nested/jobs/<id>_signal.json", "deep/nested/jobs/<id>_0_log.out",
        "deep/nested/jobs/<id>_0_log.err", "deep/nested/jobs/<id>_0_result.pkl",
        "deep/per_job", "deep/per_job/<id>", "deep/per_job/<id>/<id>_0_result.pkl",
        "deep/per_job/cells/cell_*.py",
    }
    assert expected <= audit.seen, sorted(expected - audit.seen)


# -- folders others control --------------------------------------------------------------------


class Trap:
    """Unpickling it creates ``marker``: a stand-in for the code an attacker would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    return pwd.getpwnam("nobody")


UNSAFE = ("owned by nobody", "mode 777", "mode 770", "mode 1777")


@contextlib.contextmanager
def unsafe(folder: Path, how: str) -> Iterator[str]:
    """Make ``folder`` one that others control; yields the start of the expected refusal."""
    if how == "owned by nobody":
        nobody = _nobody()
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        expected = f"job folder {folder} belongs to uid {nobody.pw_uid}, not to you"
    else:
        mode = int(how.split()[1], 8)
        folder.chmod(mode)
        expected = f"job folder {folder} is writable by others (mode {mode:o})"
    try:
        yield expected
    finally:
        os.chown(folder, os.getuid(), os.getgid())
        folder.chmod(0o700)


def trapped_job(folder: Path) -> tuple[submitit.Job[Any], Path]:
    """A finished real job whose result and payload pickles were replaced by traps."""
    job = submitit.LocalExecutor(folder).submit(pow, 2, 5)
    assert job.result(timeout=WAIT_S) == 32
    marker = folder.parent / f"trap-fired-{job.job_id}"
    payload.dump(("success", Trap(marker)), job.paths.result_pickle)
    payload.dump(Trap(marker), job.paths.submitted_pickle)
    return job, marker


def one_line_usage_error(ipython: Any, cell: str) -> str:
    with pytest.raises(UsageError) as caught:
        ipython.run(cell)
    message = str(caught.value)
    assert "\n" not in message
    return message


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("how", UNSAFE)
def test_a_folder_others_control_is_refused_before_any_pickle_is_loaded(
    ipython: Any, tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "jobs"
    job, marker = trapped_job(folder)
    files = listing(folder)
    with unsafe(folder, how) as expected:
        # Re-attach: the job's description (JSON) is read, its pickles are not.
        attached: submitit.Job[Any] = submitit.Job(folder, job.job_id)
        assert attached.state == "COMPLETED"  # from the events: nothing unpickled
        for action in (attached.result, attached.submission, attached.exception):
            with pytest.raises(JobFolderError, match=re.escape(expected)):
                action()
        # %slurm_jobs
        message = one_line_usage_error(ipython, f"%slurm_jobs --folder {folder}")
        assert message.startswith(expected), message
        # Submitting there, with the magic and with the API.
        message = one_line_usage_error(
            ipython,
            f"%%slurm --cluster local --no-widget --folder {folder}\n"
            "def f():\n    return 1\njob = f()\n",
        )
        assert message.startswith(expected), message
        with pytest.raises(FailedSubmissionError, match=re.escape(expected)):
            submitit.LocalExecutor(folder).submit(pow, 2, 3)
        assert listing(folder) == files, "something was written into the folder"
        assert not marker.exists(), "a pickle of the unsafe folder was loaded"
    # The control: in a private folder the trap does fire when the result is loaded.
    submitit.Job(folder, job.job_id).result()
    assert marker.exists()


def test_a_foreign_per_job_subfolder_is_listed_as_unreadable(ipython: Any, tmp_path: Path) -> None:
    nobody = _nobody()
    template = tmp_path / "jobs" / "%j"
    first, marker = trapped_job(template)
    second = submitit.LocalExecutor(template).submit(pow, 3, 2)
    assert second.result(timeout=WAIT_S) == 9
    os.chown(first.paths.folder, nobody.pw_uid, nobody.pw_gid)
    try:
        table = ipython.run(f"%slurm_jobs --folder {tmp_path / 'jobs'}")
        assert list(table) == [second.job_id]
        assert table[second.job_id].result() == 9
        reason = table.unreadable[first.job_id]
        assert reason.startswith(f"JobFolderError: job folder {first.paths.folder} belongs to")
        assert "unreadable" in repr(table)
        assert not marker.exists()
    finally:
        os.chown(first.paths.folder, os.getuid(), os.getgid())
