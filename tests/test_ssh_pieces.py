"""The SSH backend's pieces that need no sshd: addresses, quoting, messages, versions, the
mirror, and the remote side itself, spoken to over real pipes (the end-to-end tests with a real
sshd and Slurm are in tests/ssh/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.ssh.connection import login_error, remote_command
from jupyter_slurm_ckpt.backends.ssh.executor import _sender, remote_path
from jupyter_slurm_ckpt.backends.ssh.hello import RemoteEnvironmentError, check, hello
from jupyter_slurm_ckpt.backends.ssh.mirror import LOG_KEEP_BYTES, LOG_MAX_BYTES, MirroredJob
from jupyter_slurm_ckpt.backends.ssh.protocol import (
    REMOTE_MODULE,
    ChannelError,
    Reader,
    Writer,
    raise_for,
)
from jupyter_slurm_ckpt.backends.ssh.sync import apply, describe, request_entry
from jupyter_slurm_ckpt.backends.ssh.target import SshTarget
from jupyter_slurm_ckpt.core import array_payload, payload
from jupyter_slurm_ckpt.core.errors import UncompletedJobError
from jupyter_slurm_ckpt.core.helpers import DelayedSubmission
from jupyter_slurm_ckpt.core.outcome import write_outcome
from jupyter_slurm_ckpt.core.paths import JobPaths

# -- where a cluster is ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "user", "port", "folder"),
    [
        ("ssh://login-node", "login-node", None, None, ""),
        ("login-node", "login-node", None, None, ""),
        ("ssh://me@login.example.org:2222", "login.example.org", "me", 2222, ""),
        ("ssh://me@login/~/jobs", "login", "me", None, "~/jobs"),
        ("ssh://login/scratch/me/jobs/", "login", None, None, "/scratch/me/jobs"),
    ],
)
def test_ssh_addresses(
    text: str, host: str, user: str | None, port: int | None, folder: str
) -> None:
    target = SshTarget.parse(text)
    assert (target.host, target.user, target.port, target.folder) == (host, user, port, folder)
    assert SshTarget.parse(target.url).without_folder() == target.without_folder()


@pytest.mark.parametrize(
    "text",
    ["ssh://-oProxyCommand=touch /tmp/x", "ssh://", "ssh://host name", "ssh://h:0",
     "ssh://h:port", "ssh://a b@h", "ssh://h/\n", "ssh://h/"],
)  # fmt: skip
def test_what_ssh_could_misread_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"ssh://|port|user|folder"):
        SshTarget.parse(text)


def test_an_odd_python_path_is_one_word_on_the_remote_shell(tmp_path: Path) -> None:
    odd = tmp_path / "py; touch pwned; $(touch pwned2) `touch pwned3`"
    odd.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > argv\n')
    odd.chmod(0o755)
    done = subprocess.run(["bash", "-c", remote_command(str(odd), REMOTE_MODULE)], cwd=tmp_path)
    assert done.returncode == 0
    assert (tmp_path / "argv").read_text().split() == ["-m", REMOTE_MODULE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argv", odd.name]  # nothing else ran


def test_a_python_in_the_remote_home(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "py").write_text('#!/bin/sh\necho "$0"\n')
    (tmp_path / "env" / "py").chmod(0o755)
    done = subprocess.run(
        ["bash", "-c", remote_command("~/env/py", REMOTE_MODULE)],
        capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.stdout.strip() == f"{tmp_path}/env/py"


def test_remote_folders_are_absolute_there() -> None:
    home = "/home/me"
    assert remote_path("slurm_jobs", home) == "/home/me/slurm_jobs"
    assert remote_path("~/a/../b/%j", home) == "/home/me/b/%j"
    assert remote_path("~", home) == "/home/me"
    assert remote_path("/scratch/x/", home) == "/scratch/x"


def test_a_failed_login_says_what_to_do() -> None:
    target = SshTarget.parse("ssh://me@login")
    denied = login_error(target, "me@login: Permission denied (publickey).\n", "/run/x")
    assert "authentication failed" in str(denied) and "ssh-copy-id" in str(denied)
    assert "ssh -fNM -S /run/x -o ControlPersist=yes login" in str(denied)
    changed = login_error(target, "Host key verification failed.\n", "/run/x")
    assert "host key" in str(changed) and "ssh login" in str(changed)


# -- versions ------------------------------------------------------------------------------------


def test_versions_said_at_connect() -> None:
    mine = hello()
    check(mine, "login", "python3")  # the same environment passes
    for field, value, expected in [
        ("python", "3.10.12", "same Python minor version"),
        ("cloudpickle", "2.2.1", "same cloudpickle on both sides"),
        ("protocol", 0, "another protocol"),
    ]:
        with pytest.raises(RemoteEnvironmentError, match=expected) as caught:
            check({**mine, field: value}, "login", "~/env/bin/python")
        message = str(caught.value)
        assert f"cloudpickle=={cloudpickle.__version__}" in message
        assert "~/env/bin/python on login" in message


# -- messages ------------------------------------------------------------------------------------


def test_messages_cross_a_pipe_whole_and_in_pieces() -> None:
    read_end, write_end = os.pipe()
    body = os.urandom(3 * 2**20 + 17)
    sender = threading.Thread(
        target=lambda: Writer(write_end, 10).message({"op": "x", "body": len(body)}, [body])
    )
    sender.start()
    reader = Reader(read_end, 10)
    assert reader.header() == {"op": "x", "body": len(body)}
    pieces: list[bytes] = []
    reader.body(len(body), lambda piece: pieces.append(bytes(piece)))
    sender.join()
    assert b"".join(pieces) == body and len(pieces) > 1
    os.close(write_end)
    with pytest.raises(EOFError):
        reader.header()
    os.close(read_end)


def test_a_stalled_or_garbled_channel_is_reported() -> None:
    read_end, write_end = os.pipe()
    reader = Reader(read_end, 0.2)
    with pytest.raises(ChannelError, match=r"no answer for 0\.2 s"):
        reader.header()
    os.write(write_end, b"Welcome to the login node!\n")
    with pytest.raises(ChannelError, match="not a message"):
        reader.header()
    os.close(read_end)
    os.close(write_end)


def test_remote_errors_come_back_as_themselves() -> None:
    with pytest.raises(UncompletedJobError, match="is PENDING"):
        raise_for({"ok": False, "error": {"type": "UncompletedJobError", "message": "is PENDING"}})
    with pytest.raises(RuntimeError, match="ZeroDivisionError on the cluster: boom"):
        raise_for({"ok": False, "error": {"type": "ZeroDivisionError", "message": "boom"}})


# -- the mirror ----------------------------------------------------------------------------------


def test_the_mirror_applies_each_piece_once(tmp_path: Path) -> None:
    copy = MirroredJob(JobPaths(tmp_path, "12"))
    lines = b'{"t": 1, "event": "submitted"}\n{"t": 2, "event": "started"}\n'
    with copy.locked() as update:
        update.events(0, lines[:31])
        update.events(0, lines)  # the same start again (another process was first): the rest
        update.events(0, lines)
        update.log("0.out", 0, b"step 1\n")
        update.log("0.out", 0, b"step 1\nstep 2\n")  # overlaps what is copied
    assert copy.paths.events.read_bytes() == lines
    assert copy.paths.stdout.read_bytes() == b"step 1\nstep 2\n"
    assert copy.log_ends() == {"0.out": 14}
    with copy.locked() as update:
        update.log("0.out", 100, b"late\n")  # the log ran ahead of the copy: its end only
    assert copy.paths.stdout.read_bytes() == b"late\n" and copy.log_ends() == {"0.out": 105}
    with copy.locked() as update:
        for start in range(105, 105 + LOG_MAX_BYTES + 4096, 4096):
            update.log("0.out", start, b"x" * 4095 + b"\n")
    assert copy.paths.stdout.stat().st_size <= LOG_MAX_BYTES
    assert copy.paths.stdout.stat().st_size >= LOG_KEEP_BYTES


# -- the remote side, over real pipes --------------------------------------------------------------


def test_the_remote_side_answers_and_a_cut_upload_submits_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    executor = submitit.LocalExecutor(folder)
    job = executor.submit(sum, [1, 2])
    assert job.result(timeout=60) == 3
    service = subprocess.Popen(
        [sys.executable, "-m", REMOTE_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert service.stdin is not None and service.stdout is not None
    reader, writer = Reader(service.stdout.fileno(), 60), Writer(service.stdin.fileno(), 60)
    assert reader.header()["cloudpickle"] == cloudpickle.__version__
    writer.message({"op": "list", "folder": str(folder), "depth": 1})
    listed = raise_for(reader.header())
    assert [(j["folder"], j["id"]) for j in listed["jobs"]] == [(str(folder), job.job_id)]
    writer.message({"op": "status", "jobs": [{"folder": str(folder), "id": job.job_id}]})
    answer = raise_for(reader.header())
    (entry,) = answer["jobs"]
    assert entry["state"] == "COMPLETED" and entry["done"]
    body = reader.body_bytes(answer["body"])
    kinds = [chunk["kind"] for chunk in entry["chunks"]]
    assert kinds[0] == "events" and "result" in kinds
    assert body.startswith(b'{"t"') and b'"completed"' in body
    # Half a payload, then the end of the connection: the process ends, no job is made.
    writer.message({"op": "submit", "folder": str(folder / "cut"), "sizes": [4096], "body": 4096},
                   [b"\0" * 2048])  # fmt: skip
    service.stdin.close()
    assert service.wait(timeout=60) == 3  # the upload was cut short
    assert not (folder / "cut").exists() or not any((folder / "cut").iterdir())
    assert json.loads(JobPaths(folder, job.job_id).info.read_text())["cluster"] == "local"


def test_an_array_crosses_as_the_one_file_its_elements_share(tmp_path: Path) -> None:
    weights = list(range(50_000))  # what the elements share: sent once, not once each
    submissions = [DelayedSubmission(_weighted_sum, weights, x) for x in range(3)]
    elements = array_payload.spool_array(submissions, tmp_path / "here")
    shared = array_payload.shared_file(elements)
    assert shared is not None and shared.size < sum(item.size for item in elements)
    assert array_payload.shared_file([*elements[:1], payload.Pickled(1, tmp_path)]) is None
    service = subprocess.Popen(
        [sys.executable, "-m", REMOTE_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert service.stdin is not None and service.stdout is not None
    try:
        reader, writer = Reader(service.stdout.fileno(), 60), Writer(service.stdin.fileno(), 60)
        reader.header()
        folder = tmp_path / "there"
        header = {"op": "submit", "folder": str(folder), "cluster": "local", "array": True,
                  "sizes": [item.size for item in elements], "shared": shared.size,
                  "body": shared.size}  # fmt: skip
        writer.message(header, [_sender(shared)])
        answer = raise_for(reader.header())
        reader.body_bytes(answer["body"])
    finally:
        for item in elements:
            item.discard()
        service.stdin.close()
        service.wait(timeout=60)
    jobs = [submitit.LocalJob(folder, job_id) for job_id in answer["ids"]]
    assert [job.result(timeout=60) for job in jobs] == [sum(weights) * x for x in range(3)]
    first, second = (JobPaths(folder, job.job_id).submitted_pickle for job in jobs[:2])
    assert os.path.samefile(first, second)  # one file there too


def _weighted_sum(weights: list[int], x: int) -> int:
    return sum(weights) * x


def test_copies_of_jobs_gone_from_the_cluster_are_dropped(tmp_path: Path) -> None:
    from jupyter_slurm_ckpt.backends.ssh.listing import FORGET_AFTER_S, forget_gone
    from jupyter_slurm_ckpt.core.info import JobInfo
    from jupyter_slurm_ckpt.core.paths import JobKey

    def copy_of(folder: Path, job_id: str, age: float) -> JobPaths:
        folder.mkdir(parents=True, exist_ok=True)
        paths = JobPaths(folder, job_id)
        JobInfo(job_id, "ssh", str(folder), num_tasks=2).write(paths.info)
        for path in (paths.events, paths.stdout, paths.for_task(1).stderr):
            path.write_text("x\n")
        stamp = time.time() - age
        os.utime(paths.info, (stamp, stamp))
        return paths

    kept = copy_of(tmp_path, "7", 3600)
    gone = copy_of(tmp_path / "sub", "7", 3600)  # the same id in a subfolder: another job
    fresh = copy_of(tmp_path, "8", 0)  # made a moment ago (a submission in flight elsewhere)
    forget_gone(tmp_path, 1, {JobKey(tmp_path, "7")})
    assert kept.info.exists() and kept.stdout.exists()
    assert fresh.info.exists()
    assert not list((tmp_path / "sub").iterdir()), "every file of the gone job's copy"
    assert FORGET_AFTER_S < 3600 and not gone.events.exists()


def test_a_result_copied_from_an_earlier_run_goes_once_the_clusters_differs(
    tmp_path: Path,
) -> None:
    # The remote side is a local job folder read as the remote service reads it; the kernel's
    # copy is another folder. A task of a new run removes its last run's result, then writes
    # its own: the copy must follow, or it shows the old run's result for good.
    cluster_folder = tmp_path / "cluster"
    done = submitit.LocalExecutor(cluster_folder).submit(sum, [1, 2])
    assert done.result(timeout=60) == 3
    there = submitit.Job(cluster_folder, done.job_id)
    copy = MirroredJob(JobPaths(tmp_path / "laptop", done.job_id))
    result_there, result_here = there.paths.result_pickle, copy.paths.result_pickle

    def refresh() -> list[str]:
        entry = request_entry(str(cluster_folder), done.job_id, copy, 1)
        answer, pieces = describe(there, there.state, entry)
        read_end, write_end = os.pipe()
        os.write(write_end, b"".join(pieces))
        os.close(write_end)
        remote = {"target": "ssh://login", "python": "python3", "folder": str(cluster_folder)}
        apply(answer, Reader(read_end, 5), copy, remote, 1)
        os.close(read_end)
        return [chunk["kind"] for chunk in answer["chunks"]]

    assert "result" in refresh() and result_here.read_bytes() == result_there.read_bytes()
    assert "result" not in refresh()  # copied already: not sent again
    write_outcome(result_there, "success", 4)  # a new run's result
    assert "result" in refresh() and payload.load(result_here) == ("success", 4)
    result_there.unlink()  # the next run's task removed it
    refresh()
    assert not result_here.exists()
