"""What goes wrong between a laptop and its cluster, and what the user sees then.

- The connection is cut for 30 s mid-run (sshd stopped, every connection dropped): the job goes
  on there, the widget says the cluster cannot be reached, and catches up when it is back.
- An upload cut short never becomes a job.
- A login that fails, or a cluster Python that cannot run this kernel's jobs, is one line that
  says what to do; nothing is submitted.
- What the user types travels as data: shell characters in a folder or a Python path run
  nothing on the cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from ssh_world import HOST, SSH_TESTS, Laptop, SshWorld
from support import wait_for
from test_ssh_notebook import _steps, printed, ready, start_stepper
from test_widget_kernel import Frontend, _events

pytestmark = SSH_TESTS

OUTAGE_S = 30.0


def submitted_jobs(world: SshWorld) -> list[str]:
    """The cluster user's jobs Slurm knows now."""
    done = subprocess.run(
        ["squeue", "-h", "-t", "all", "-u", world.cluster.pw_name, "-o", "%i"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.split()


def test_the_connection_cut_for_30_s_mid_run(
    laptop: Laptop, ssh_world: SshWorld, remote_folder: str
) -> None:
    frontend, widget, job_id = start_stepper(laptop, remote_folder)
    models = frontend.models
    there = ssh_world.cluster_path(remote_folder)
    frontend.pump(lambda: models[widget]["job_state"] == "RUNNING", "the job to run")

    cut = time.monotonic()
    ssh_world.stop_sshd()
    try:
        frontend.pump(
            lambda: "cannot be reached" in models[widget]["counters"], "the widget to say so"
        )
        assert models[widget]["job_state"] == "RUNNING", "it shows what it last saw"
        # The job goes on there meanwhile, and ends: nothing needed the connection.
        steps = _steps(there, job_id)
        wait_for(lambda: _steps(there, job_id) > steps + 5, "the job to go on")
        (there / "release").touch()
        events = there / f"{job_id}_events.jsonl"
        wait_for(lambda: '"completed"' in _read(events), "its end", timeout=60)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut)))
        assert models[widget]["job_state"] == "RUNNING" and not models[widget]["job_done"]
        assert "cannot be reached" in models[widget]["counters"]
    finally:
        ssh_world.start_sshd()
    # Back: the widget catches up with everything that happened meanwhile.
    frontend.pump(lambda: models[widget]["job_state"] == "COMPLETED", "the widget to catch up")
    assert "cannot be reached" not in models[widget]["counters"]
    assert _events(models[widget])[-1] == "completed"
    assert printed(frontend, "print(job.result()['steps'])") >= steps + 5


def test_an_upload_cut_short_never_becomes_a_job(
    laptop: Laptop, ssh_world: SshWorld, remote_folder: str
) -> None:
    frontend = ready(laptop, remote_folder)
    frontend.execute("%config SlurmMagics.max_payload_mb = 2000")
    frontend.execute(f"%slurm --cluster ssh://{HOST} --no-widget job = len(b'')")  # connected
    assert not frontend.errors, frontend.errors
    before = submitted_jobs(ssh_world)
    streams = len(frontend.streams)
    cell = frontend.execute(
        f"%%slurm --cluster ssh://{HOST} --no-widget\n"
        "data = bytes(800 * 2**20)\n"
        "job = len(data)\n",
        wait=False,
    )
    # Hold the remote side once it has read part of the payload, then cut the connection.
    reading = wait_for(lambda: _reading_upload(ssh_world), "the upload to start")
    os.kill(reading, signal.SIGSTOP)
    ssh_world.stop_sshd()
    os.kill(reading, signal.SIGCONT)  # it reads what reached it, then the end: no more
    try:
        frontend.pump(lambda: cell in frontend.idle, "the cell to fail")
    finally:
        ssh_world.start_sshd()
    error = _usage_error(frontend, "", wait=False, since=streams)
    assert "cut short: nothing was submitted" in error, error
    wait_for(lambda: reading not in ssh_world.remote_processes(), "the remote side to end")
    assert submitted_jobs(ssh_world) == before
    assert len(list(ssh_world.cluster_path(remote_folder).glob("*_job.json"))) == 1  # the first


def test_a_failed_login_or_a_wrong_python_is_one_line(
    laptop: Laptop, ssh_world: SshWorld, remote_folder: str
) -> None:
    frontend = ready(laptop, remote_folder)
    before = submitted_jobs(ssh_world)

    login = _usage_error(frontend, f"%slurm --cluster ssh://nobody@{HOST} job = len('')")
    assert "authentication failed" in login and "ssh-copy-id" in login, login

    frontend.execute("%config SlurmMagics.remote_python = '~/env-skew/bin/python'")
    skew = _usage_error(frontend, f"%slurm --cluster ssh://{HOST} job = len('')")
    assert "cloudpickle 3.0.0" in skew and "pip install jupyter_slurm_ckpt==" in skew, skew

    frontend.execute("%config SlurmMagics.remote_python = '/usr/bin/python3'")
    missing = _usage_error(frontend, f"%slurm --cluster ssh://{HOST} job = len('')")
    assert "jupyter_slurm_ckpt is not installed for /usr/bin/python3 on" in missing, missing
    assert submitted_jobs(ssh_world) == before


def test_what_the_user_types_runs_nothing_on_the_cluster(
    laptop: Laptop, ssh_world: SshWorld, remote_folder: str
) -> None:
    frontend = ready(laptop, remote_folder)
    home = Path(ssh_world.cluster.pw_dir)
    marker = home / "pwned"
    odd = f"{remote_folder}/a;touch ~/pwned;$(touch ~/pwned)`touch ~/pwned`"
    frontend.execute(
        f"%slurm --cluster ssh://{HOST} --no-widget --folder '{odd}' job = len('abc')\n"
        "print(job.result(timeout=120))"
    )
    assert not frontend.errors, frontend.errors
    assert frontend.streams[-1].strip() == "3"
    assert (home / odd).is_dir(), "the folder is named as typed, every character data"
    frontend.execute("%config SlurmMagics.remote_python = '~/env/bin/python;touch ~/pwned'")
    error = _usage_error(frontend, f"%slurm --cluster ssh://{HOST} job = len('')")
    assert "there is no ~/env/bin/python;touch ~/pwned on" in error, error
    assert not marker.exists()


def _usage_error(
    frontend: Frontend, code: str, wait: bool = True, since: int | None = None
) -> str:
    """Run a cell that must fail with one line (IPython prints a ``UsageError`` as
    ``UsageError: ...`` on stderr, no traceback); that line."""
    streams = len(frontend.streams) if since is None else since
    if wait:
        frontend.execute(code)
    printed = "".join(frontend.streams[streams:])
    assert printed.startswith("UsageError: "), f"the cell did not fail as expected: {printed!r}"
    assert printed.strip().count("\n") == 0, printed
    assert not frontend.errors, frontend.errors  # no traceback
    return printed.strip()


def _reading_upload(world: SshWorld) -> int | None:
    """The remote side that has read more than 64 MiB of a request, if one has."""
    for pid in world.remote_processes():
        try:
            io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        except OSError:
            continue
        if int(io["rchar"]) > 64 * 2**20:
            return pid
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
