"""The watcher's cost over SSH: one round trip per tick for all the jobs it watches.

A laptop kernel submits a job array of 100 over SSH; Slurm keeps them waiting (``begin`` an
hour away), and the kernel's widget watches all 100. The kernel counts its round trips to the
cluster (``backends.ssh.session.COUNTER``) and its watcher's ticks meanwhile.
"""

from __future__ import annotations

from ssh_world import HOST, SSH_TESTS, Laptop
from test_ssh_notebook import printed, ready

pytestmark = SSH_TESTS

JOBS = 100


def test_one_round_trip_per_tick_for_100_watched_jobs(laptop: Laptop, remote_folder: str) -> None:
    frontend = ready(laptop, remote_folder)
    frontend.execute(
        f"%%slurm --cluster ssh://{HOST} --sbatch begin=now+3600\n"
        "def element(i):\n"
        "    return i\n"
        f"jobs = [element(i) for i in range({JOBS})]\n"
    )
    assert not frontend.errors, frontend.errors
    models = frontend.models
    table = next(comm for comm, state in models.items() if "rows" in state)
    frontend.pump(
        lambda: len(models[table]["rows"]) == JOBS
        and all(row["state"] == "PENDING" for row in models[table]["rows"]),
        "100 PENDING rows",
    )
    ticks, trips, asked = printed(
        frontend,
        "import time\n"
        "from jupyter_slurm_ckpt.backends.ssh.session import COUNTER\n"
        "from jupyter_slurm_ckpt.views.watcher import get_watcher\n"
        "watcher = get_watcher()\n"
        "t0, r0, j0 = watcher.ticks, COUNTER.by_op.get('status', 0), "
        "COUNTER.jobs_by_op.get('status', 0)\n"
        "time.sleep(10)\n"
        "print((watcher.ticks - t0, COUNTER.by_op.get('status', 0) - r0, "
        "COUNTER.jobs_by_op.get('status', 0) - j0))",
    )
    print(f"ticks {ticks}, round trips {trips}, jobs asked {asked}")
    assert ticks >= 5, f"the watcher ticked only {ticks} times in 10 s"
    assert 1 <= trips <= ticks + 1, f"{trips} round trips for {ticks} ticks"
    assert asked == trips * JOBS, "each round trip asked about every watched job"
    # Slurm's reason came along: the jobs wait for their begin time.
    assert "BeginTime" in printed(frontend, "print(repr(jobs[-1].pending_reason))")
