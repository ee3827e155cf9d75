"""A laptop's notebook on a cluster behind SSH, end to end: a ``%%slurm --cluster ssh://...``
cell, the widget's *Simulate preemption* button, the resume from the checkpoint, the result,
and ``%slurm_jobs`` after a kernel restart.

The kernel runs as the laptop user, who cannot read the cluster user's home where the jobs
and their folder are: all of it goes through SSH. This test plays the browser (the widget's
comm messages, as ``tests/test_widget_kernel.py`` does) and looks at the cluster's side.
"""

from __future__ import annotations

import ast
import json
import subprocess
from typing import Any

from ssh_world import HOST, SSH_TESTS, Laptop, SshWorld
from test_widget_kernel import Frontend, preempt_and_see_it_resume

pytestmark = SSH_TESTS


def setup_cells(folder: str) -> list[str]:
    """The notebook's first cells: the extension, where the cluster is, quick polling."""
    return [
        "%load_ext jupyter_slurm_ckpt",
        "%config SlurmMagics.remote_python = '~/env/bin/python'",
        f"%config SlurmMagics.remote_folder = {folder!r}",
        "%config SchedulerPolling.poll_pending_s = 2.0",
        "%config SchedulerPolling.poll_liveness_s = 6.0",
    ]


def stepper_cell(folder: str, options: str = "") -> str:
    """A checkpointable job that counts steps until its release file exists on the cluster,
    and says where each run started counting."""
    return f'''%%slurm --cluster ssh://{HOST} --timeout 10 {options}
import os, time
from pathlib import Path
from jupyter_slurm_ckpt import Checkpointable

class Stepper(Checkpointable):
    def __init__(self):
        self.step = 0
        self.starts = []

    def __call__(self, release):
        self.starts.append(self.step)
        while not Path(release).expanduser().exists():
            self.step += 1
            print("step", self.step, flush=True)
            time.sleep(0.2)
        return {{"steps": self.step, "starts": self.starts}}

job = Stepper()("~/{folder}/release")
'''


def printed(frontend: Frontend, code: str) -> Any:
    """Run ``print(repr(...))``-style code in the kernel; the last line printed, evaluated."""
    before = len(frontend.streams)
    frontend.execute(code)
    assert not frontend.errors, frontend.errors
    lines = "".join(frontend.streams[before:]).strip().splitlines()
    return ast.literal_eval(lines[-1])


def ready(laptop: Laptop, folder: str) -> Frontend:
    """The laptop kernel's frontend, the notebook's first cells run (see :func:`setup_cells`)."""
    frontend = laptop.frontend
    assert frontend is not None
    for cell in setup_cells(folder):
        frontend.execute(cell)
    return frontend


def start_stepper(laptop: Laptop, folder: str) -> tuple[Frontend, str, str]:
    """Submit :func:`stepper_cell` there: the frontend, the widget's model and the job's id."""
    frontend = ready(laptop, folder)
    frontend.execute(stepper_cell(folder))
    assert not frontend.errors, frontend.errors
    widget = frontend.find(_model_name="VBoxModel", job_name="Stepper")
    return frontend, widget, frontend.models[widget]["job_id"]


def test_a_notebook_on_the_cluster_through_ssh(
    laptop: Laptop, ssh_world: SshWorld, remote_folder: str
) -> None:
    # The laptop user reaches the cluster user's files only through SSH.
    peek = ["runuser", "-u", ssh_world.laptop.pw_name, "--", "ls", ssh_world.cluster.pw_dir]
    assert subprocess.run(peek, capture_output=True).returncode != 0

    frontend, widget, job_id = start_stepper(laptop, remote_folder)
    models = frontend.models
    preempt = frontend.find(_model_name="ButtonModel", description="Simulate preemption")
    assert models[widget]["job_backend"] == "ssh"

    # The job and its folder are on the cluster, submitted by the cluster user with sbatch.
    there = ssh_world.cluster_path(remote_folder)
    info = json.loads((there / f"{job_id}_job.json").read_text())
    assert info["cluster"] == "slurm" and info["uid"] == ssh_world.cluster.pw_uid
    assert (there / "cells").is_dir(), "the cell's source goes with the job (tracebacks)"

    frontend.pump(lambda: models[widget]["job_state"] == "RUNNING", "the job to run")
    frontend.pump(lambda: models[preempt]["disabled"] is False, "the button to be enabled")
    frontend.pump(lambda: _steps(there, job_id) >= 3, "a few steps")

    # The browser's click: signal, checkpoint, requeue on the cluster; the widget follows.
    preempt_and_see_it_resume(frontend, widget, preempt)

    (there / "release").touch()
    frontend.pump(lambda: models[widget]["job_state"] == "COMPLETED", "the job's end")
    result = printed(frontend, "print(job.result(timeout=60))")
    first, second = result["starts"]
    assert first == 0 and 0 < second <= result["steps"], "the second run resumed mid-way"
    assert models[widget]["result"].startswith("{'steps': ")

    # After a kernel restart, %slurm_jobs finds the job again through the connection.
    laptop.restart()
    frontend = ready(laptop, remote_folder)
    found = printed(
        frontend,
        f"jobs = %slurm_jobs --cluster ssh://{HOST}\n"
        f"print(repr((type(jobs[{job_id!r}]).__name__, jobs[{job_id!r}].state, "
        f"jobs[{job_id!r}].result()['starts'], len(jobs))))",
    )
    assert found == ("SshJob", "COMPLETED", [first, second], 1)


def _steps(folder: Any, job_id: str) -> int:
    """How far the job counted, from its log on the cluster."""
    try:
        log = (folder / f"{job_id}_0_log.out").read_text()
    except OSError:
        return 0
    return log.count("step ")


def test_arrays_several_nodes_and_resubmission_through_ssh(
    laptop: Laptop, ssh_world: SshWorld, remote_folder: str
) -> None:
    frontend = ready(laptop, remote_folder)
    frontend.execute(
        f"%%slurm --cluster ssh://{HOST} --no-widget --nodes 2 --tasks-per-node 1\n"
        "from jupyter_slurm_ckpt import JobEnvironment\n"
        "def where(x):\n"
        "    env = JobEnvironment()\n"
        "    print('task', env.global_rank, flush=True)\n"
        "    return (x, env.global_rank, env.num_nodes, env.node)\n"
        "pair = where(7)\n"
    )
    frontend.execute(
        f"%%slurm --cluster ssh://{HOST} --no-widget\n"
        "def square(x):\n"
        "    return x * x\n"
        "squares = [square(x) for x in range(4)]\n"
    )
    assert not frontend.errors, frontend.errors
    assert printed(frontend, "print([job.result(timeout=120) for job in squares])") == [0, 1, 4, 9]
    assert printed(frontend, "print(len({job.job_id.split('_')[0] for job in squares}))") == 1
    assert printed(frontend, "print(pair.results(timeout=120))") == [(7, 0, 2, 0), (7, 1, 2, 1)]
    assert printed(frontend, "print(repr(pair.stdout(1)))").strip() == "task 1"

    # A job that ended without its result continues as a new job there, once.
    frontend.execute(
        f"%slurm --cluster ssh://{HOST} --no-widget --sbatch begin=now+3600 waiting = len('x')\n"
        "waiting.cancel()\n"
        "again = waiting.resubmit()\n"
        "same = waiting.resubmit_once()\n"
    )
    assert not frontend.errors, frontend.errors
    old, new, made, repeat = printed(
        frontend,
        "print((waiting.job_id, again.job_id, again.info.resubmission_of, same.job.job_id))",
    )
    assert new != old and made == old and repeat == new
    there = json.loads((ssh_world.cluster_path(remote_folder) / f"{new}_job.json").read_text())
    assert there["resubmission_of"] == old
