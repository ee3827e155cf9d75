"""The SSH backend from a laptop, side by side in one run with what it is compared to.

On this machine's test world (``tests/ssh/sshd.sh``: a laptop user who reaches a cluster user
through OpenSSH on 127.0.0.1, the test Slurm cluster behind it). Rows:

- one round trip on the connection (an empty ``status`` request), median;
- submit latency: ``executor.submit`` of a trivial job from the laptop over SSH, next to the
  same submission made on the login node itself (the cluster user's ``SlurmExecutor``: sbatch
  there); goal: SSH <= local + 2 round trips;
- uploading a 512 MiB payload: the ``submit`` request that carries it (the remote side writes
  it to its job folder and submits it), next to ``scp`` of the same 512 MiB through the same
  multiplexed connection, alternated; goal: ours >= 80 % of scp's rate.

The jobs wait (``begin`` an hour away) and are cancelled at the end. Run as root, with the test
cluster up: ``eval "$(bash tests/slurm/cluster.sh start)"; .venv/bin/python
benchmarks/bench_ssh.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SSHD = ROOT / "tests" / "ssh" / "sshd.sh"
HOST = "login-node"
MIB = 2**20
UPLOAD_MIB = 512
WAITING = {"begin": "now+3600"}  # Slurm keeps the benchmark's jobs waiting


def noop() -> None:
    return None


# -- the two sides (each run as its user) -----------------------------------------------------


def as_cluster(repeat: int) -> dict[str, Any]:
    """Submissions made on the login node itself: the cluster user's own SlurmExecutor."""
    import jupyter_slurm_ckpt as submitit

    executor = submitit.SlurmExecutor(Path.home() / "bench_ssh_local")
    executor.update_parameters(time=5, additional_parameters=WAITING)
    executor.submit(noop)  # warm: imports, Slurm's config
    times = []
    for _ in range(repeat * 10):
        start = time.perf_counter()
        executor.submit(noop)
        times.append(time.perf_counter() - start)
    return {"local_submit_s": times}


def as_laptop(repeat: int) -> dict[str, Any]:
    """Round trips, submissions and the 512 MiB upload, from the laptop over SSH."""
    import jupyter_slurm_ckpt as submitit

    executor = submitit.AutoExecutor("bench_ssh", cluster=f"ssh://{HOST}",
                                     ssh_python="~/env/bin/python")  # fmt: skip
    executor.update_parameters(timeout_min=5, slurm_additional_parameters=WAITING)
    remote = executor.executor.remote
    round_trips = []
    for _ in range(repeat * 20):
        start = time.perf_counter()
        remote.request({"op": "status", "jobs": []})
        round_trips.append(time.perf_counter() - start)
    executor.submit(noop)
    submits = []
    for _ in range(repeat * 10):
        start = time.perf_counter()
        executor.submit(noop)
        submits.append(time.perf_counter() - start)
    uploads, copies = _uploads(executor, remote, repeat)
    return {"round_trip_s": round_trips, "ssh_submit_s": submits, "upload_s": uploads,
            "scp_s": copies}  # fmt: skip


def _uploads(executor: Any, remote: Any, repeat: int) -> tuple[list[float], list[float]]:
    """The submit requests carrying 512 MiB, and scp of 512 MiB, alternated."""
    payload = bytes(UPLOAD_MIB * MIB)
    requests: list[float] = []
    timed = remote.request

    def timing(header: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return timed(header, *args, **kwargs)
        finally:
            if header.get("op") == "submit":
                requests.append(time.perf_counter() - start)

    remote.request = timing
    source = Path(tempfile.mkdtemp()) / "payload"
    source.write_bytes(payload)
    control = remote.connection.control_path()
    scp = ["scp", "-q", "-o", f"ControlPath={control}", "-o", "ControlMaster=no", str(source),
           f"{HOST}:bench_ssh/scp_copy"]  # fmt: skip
    copies = []
    try:
        for _ in range(repeat):
            executor.submit(len, payload)
            start = time.perf_counter()
            subprocess.run(scp, check=True)
            copies.append(time.perf_counter() - start)
    finally:
        remote.request = timed
        shutil.rmtree(source.parent)
    return requests, copies


# -- the run ----------------------------------------------------------------------------------


def _as_user(user: str, role: str, repeat: int, env: dict[str, str]) -> dict[str, Any]:
    """Run this script as ``user`` in its environment (~/env) and return what it measured."""
    account = pwd.getpwnam(user)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as copy:
        copy.write(Path(__file__).read_text())
    os.chmod(copy.name, 0o644)
    try:
        done = subprocess.run(
            ["runuser", "-u", user, "--", "env", f"HOME={account.pw_dir}", *[
                f"{k}={v}" for k, v in env.items()],
             f"{account.pw_dir}/env/bin/python", copy.name, "--role", role,
             "--repeat", str(repeat)],
            capture_output=True, text=True, cwd="/", check=False,
        )  # fmt: skip
    finally:
        os.unlink(copy.name)
    if done.returncode != 0:
        raise RuntimeError(f"the {role} side failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--role", choices=["cluster", "laptop"])
    args = parser.parse_args()
    if args.role:
        measure = as_cluster if args.role == "cluster" else as_laptop
        print(json.dumps(measure(args.repeat)))
        return
    if not os.environ.get("SLURM_CONF"):
        sys.exit('start the test cluster first: eval "$(bash tests/slurm/cluster.sh start)"')
    exports = subprocess.run(["bash", str(SSHD), "start"], check=True, capture_output=True,
                             text=True).stdout  # fmt: skip
    users = dict(item.split("=", 1) for item in exports.split()[1:] if "=" in item)
    laptop, cluster = users["JSC_SSH_LAPTOP_USER"], users["JSC_SSH_CLUSTER_USER"]
    here: dict[str, list[float]] = {}
    there: dict[str, list[float]] = {}
    try:
        for _ in range(args.repeat):  # alternated: both sides see the same load
            for side, measured in (
                (here, _as_user(cluster, "cluster", 1, {"SLURM_CONF": os.environ["SLURM_CONF"]})),
                (there, _as_user(laptop, "laptop", 1, {"XDG_RUNTIME_DIR": ""})),
            ):
                for key, values in measured.items():
                    side.setdefault(key, []).extend(values)
    finally:
        subprocess.run(["scancel", "-u", cluster], check=False)
        home = Path(pwd.getpwnam(cluster).pw_dir)
        for folder in ("bench_ssh", "bench_ssh_local"):
            shutil.rmtree(home / folder, ignore_errors=True)
    rtt = statistics.median(there["round_trip_s"])
    local = statistics.median(here["local_submit_s"])
    ssh = statistics.median(there["ssh_submit_s"])
    upload = UPLOAD_MIB / statistics.median(there["upload_s"])
    scp = UPLOAD_MIB / statistics.median(there["scp_s"])
    rows = [
        ("one round trip (empty status request), median", _ms(there["round_trip_s"])),
        ("submit on the login node itself (sbatch there)", _ms(here["local_submit_s"])),
        ("submit from the laptop over SSH", _ms(there["ssh_submit_s"])),
        ("  minus the local submit", f"{(ssh - local) * 1000:+.1f} ms"),
        ("  <= local submit + 2 round trips?", "yes" if ssh <= local + 2 * rtt else "NO"),
        ("512 MiB payload: the submit request", f"{upload:.0f} MB/s"),
        ("512 MiB: scp on the same connection", f"{scp:.0f} MB/s"),
        ("  ours / scp (goal >= 80 %)", f"{upload / scp:.0%}"),
    ]
    print(f"{'measure':<52}{'value':>14}")
    for name, value in rows:
        print(f"{name:<52}{value:>14}")


if __name__ == "__main__":
    main()
