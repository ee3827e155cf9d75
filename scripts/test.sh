#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts what the tests need, runs them.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh -k magic   extra arguments go to every pytest run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/system-deps.sh
(cd labextension && npm ci --no-audit --no-fund --loglevel=error && npm test --silent)
bash scripts/setup.sh
# torch, an optional dependency, for the PyTorch tests and notebook: the CPU build that this
# machine keeps on disk (a bare `torch` requirement would download a CUDA build of several GB).
# With it installed, the torch tests fail rather than skip when it cannot be imported.
torch_requirement="torch==2.13.0"
.venv/bin/python -m pip install -q "$torch_requirement"
export JSC_REQUIRE_TORCH=1
.venv/bin/ruff check jupyter_slurm_ckpt tests benchmarks scripts
.venv/bin/mypy
pytest=(.venv/bin/python -m pytest -p no:cacheprovider -q)

# Everything but Slurm first (the Slurm tests come last, on a real cluster).
"${pytest[@]}" -m "not slurm" "$@"

# The kernel tests again with kernels on ipykernel 6 (.venv has 7): a small second venv with
# what a kernel and its local jobs import, and this checkout's package on its path.
kernel6=.venv-ipykernel6
[ -x "$kernel6/bin/python" ] || python3 -m venv "$kernel6"
"$kernel6/bin/python" -m pip install -q "ipykernel>=6,<7" "ipywidgets>=8" "cloudpickle>=3.0" \
    numpy tqdm "$torch_requirement"
"$kernel6/bin/python" -c 'import pathlib, sys, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
(site / "jupyter_slurm_ckpt-source.pth").write_text(sys.argv[1] + "\n")' "$PWD"
JSC_KERNEL_PYTHON="$PWD/$kernel6/bin/python" JSC_KERNEL_IPYKERNEL=6 \
    "${pytest[@]}" -m "kernel and not slurm" "$@"

# The Slurm tests on a real cluster of two emulated nodes (with fake GPUs), started twice and
# each time every Slurm test runs there: once tuned (preempted jobs get USR2 at once) without
# accounting storage (states from squeue/scontrol), once as most clusters are (no
# preempt_send_user_signal: a preemption's only notice is SIGTERM) with slurmdbd (sacct).
# The SSH backend's tests (tests/ssh: a laptop user reaching a cluster user through a real
# sshd on 127.0.0.1, this cluster behind it) run in the first pass only: what they test is the
# way to the cluster, which the cluster's mode does not change.
if compgen -G "tests/slurm/test_*.py" >/dev/null; then
    trap 'bash tests/ssh/sshd.sh stop >/dev/null 2>&1 || true
          bash tests/slurm/cluster.sh stop >/dev/null 2>&1 || true' EXIT
    for options in "--preemption signal" "--preemption stock --accounting"; do
        # shellcheck disable=SC2086
        eval "$(bash tests/slurm/cluster.sh start --nodes 2 $options)"
        marks="slurm and not ssh"
        if [[ $options == "--preemption signal" ]]; then
            eval "$(bash tests/ssh/sshd.sh start)"
            marks=slurm
        fi
        "${pytest[@]}" -m "$marks" "$@"
    done
fi
