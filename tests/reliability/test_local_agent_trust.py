"""The local agent's folder and socket cannot be planted or hijacked by another user.

Without ``XDG_RUNTIME_DIR`` the agent's folder lives in the shared ``/tmp``: another user can
create its name first (as a symbolic link to a folder of the victim's, then swap it), or put
a socket of their own where the client looks. The client must refuse a symlinked folder and
send nothing (its environment holds tokens) to a socket another user listens on.

The second user: ``nobody``, acting through real processes started as that user (the test
suite runs as root here); as another user, these tests skip (they need root to act as two).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import WAIT_S

import jupyter_slurm_ckpt as submitit
from jupyter_slurm_ckpt.backends.local import agent_client
from jupyter_slurm_ckpt.core.errors import JobFolderError

FOLDER_NAME = f"jupyter-slurm-ckpt-{os.getuid()}"


def short_folder(prefix: str) -> Path:
    """A new folder in /tmp: the agent's socket path must fit in 107 bytes (AF_UNIX), which
    pytest's tmp_path is too long for (the client would fall back to a direct start)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime folder of this test's own (agents of other tests are not disturbed)."""
    folder = short_folder("jsc-runtime-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    try:
        yield folder
    finally:
        agent_client.stop_agents()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_symlinked_agent_folder_is_refused(runtime: Path, tmp_path: Path) -> None:
    elsewhere = runtime / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (runtime / FOLDER_NAME).symlink_to(elsewhere)
    job = submitit.LocalExecutor(tmp_path / "jobs").submit(len, "four")
    assert job.result(timeout=WAIT_S) == 4  # started directly instead
    # Before the fix the agent's socket was created in the folder the link points to.
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(JobFolderError, match="is a symbolic link"):
        agent_client.agent_folder()


@pytest.fixture(scope="module")
def second_user() -> pwd.struct_passwd:
    """Another user than the one running the tests (``nobody``, or one created for them)."""
    if os.geteuid() != 0:
        pytest.skip("acting as a second user needs root (these tests start its processes)")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "jsc-second-user"],
            check=True,
        )  # fmt: skip
        return pwd.getpwnam("jsc-second-user")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp (mode 1777) that the second user can reach."""
    folder = short_folder("jsc-shared-")
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: This venv's interpreter lies under root's home: the second user runs the system's.
THEIR_PYTHON = "/usr/bin/python3"


def as_user(user: pwd.struct_passwd, code: str, *args: str) -> subprocess.Popen[str]:
    if not os.access(THEIR_PYTHON, os.X_OK):
        pytest.skip(f"the second user needs a system Python ({THEIR_PYTHON}) to act")
    return subprocess.Popen(
        [THEIR_PYTHON, "-c", code, *args],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        env={"PATH": os.environ["PATH"]},
    )


def test_another_users_link_to_a_folder_of_mine_is_refused(
    second_user: pwd.struct_passwd,
    shared_tmp: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The link points at a folder of the victim's (owned by them, 0700): following it, the
    # old check found nothing wrong; the other user could then swap the link for their own.
    mine = short_folder("jsc-private-")
    planted = as_user(
        second_user, "import os, sys; os.symlink(sys.argv[1], sys.argv[2])", str(mine),
        str(shared_tmp / FOLDER_NAME),
    )  # fmt: skip
    assert planted.wait(timeout=60) == 0
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared_tmp))
    job = submitit.LocalExecutor(tmp_path / "jobs").submit(len, "four")
    try:
        assert job.result(timeout=WAIT_S) == 4
        assert list(mine.iterdir()) == []
    finally:
        agent_client.stop_agents()
        shutil.rmtree(mine, ignore_errors=True)
    with pytest.raises(JobFolderError, match="is a symbolic link"):
        agent_client.agent_folder()


LISTENER = """
import socket, sys
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(1)
print("listening", flush=True)
server.settimeout(120)
connection, _ = server.accept()
connection.settimeout(20)
received = b""
try:
    while chunk := connection.recv(65536):
        received += chunk
except TimeoutError:
    pass
print(len(received), b"s3cret-token" in received, flush=True)
"""


def test_nothing_is_sent_to_a_socket_another_user_listens_on(
    second_user: pwd.struct_passwd,
    shared_tmp: Path,
    runtime: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JSC_TEST_TOKEN", "s3cret-token")
    theirs = shared_tmp / "agent.sock"
    listener = as_user(second_user, LISTENER, str(theirs))
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == "listening"
    # Their socket where the client looks for its agent (root could put it there; so could
    # anyone who won the race for the folder before the fix).
    os.replace(theirs, agent_client.socket_path())
    job = submitit.LocalExecutor(tmp_path / "jobs").submit(len, "four")
    assert job.result(timeout=WAIT_S) == 4
    # The client connected, saw who listens, and hung up without a byte.
    assert listener.stdout.readline().split() == ["0", "False"]
    assert listener.wait(timeout=60) == 0
