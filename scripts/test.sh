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

# The Slurm tests on real clusters of emulated nodes (fake GPUs), each pass on a cluster of its
# own (tests/slurm/cluster.sh). Which tests run where: the table in README.md, Development.
#   1. Slurm 22.05, a lab: proctrack/linuxproc (signals reach every process), nothing bound or
#      limited, preempted jobs warned at once (preempt_send_user_signal), no accounting storage
#      (states from squeue/scontrol): every Slurm test, and the SSH backend's (tests/ssh: a
#      laptop user reaching a cluster user through a real sshd on 127.0.0.1, this cluster behind
#      it; what they test is the way to the cluster, which the cluster's mode does not change).
#   2. Slurm 22.05 as production clusters run it: cgroup tracking, CPUs and memory enforced, a
#      preemption's only notice is SIGTERM, slurmdbd (sacct): every Slurm test.
#   3. Slurm 22.05, production settings, one node of 4 CPUs: several tasks on one node.
#   4. Slurm 24.11 (Debian 13's, in a Debian 13 tree: tests/slurm/newer-slurm.sh, built on the
#      first run and kept), production settings: preemption, requeue, termination, signals,
#      several nodes and kernels. Not the PyTorch notebook: the tree's Python 3.13 has no CPU
#      build of torch on this machine (a CUDA one is several GB); passes 1 and 2 run it.
newer_slurm_tests=(tests/slurm/test_slurm_termination.py tests/slurm/test_slurm_checkpoint.py
                   tests/slurm/test_slurm_production.py tests/slurm/test_slurm_asking_slurm.py
                   tests/slurm/test_slurm_nodes.py tests/slurm/test_slurm_magic.py)
if compgen -G "tests/slurm/test_*.py" >/dev/null; then
    trap 'bash tests/ssh/sshd.sh stop >/dev/null 2>&1 || true
          bash tests/slurm/cluster.sh stop >/dev/null 2>&1 || true' EXIT
    production="--cgroup --preemption stock --accounting"
    for options in "--preemption signal" "$production"; do
        # shellcheck disable=SC2086
        eval "$(bash tests/slurm/cluster.sh start --nodes 2 $options)"
        if [[ $options == "--preemption signal" ]]; then
            eval "$(bash tests/ssh/sshd.sh start)"
            "${pytest[@]}" -m "slurm and not several_cpus" "$@"
            bash tests/ssh/sshd.sh stop
        else
            "${pytest[@]}" -m "slurm and not several_cpus and not ssh" "$@"
        fi
    done
    eval "$(bash tests/slurm/cluster.sh start --nodes 1 --cgroup --cpus 4)"
    "${pytest[@]}" -m several_cpus "$@"
    bash tests/slurm/cluster.sh stop
    unset SLURM_CONF

    bash tests/slurm/newer-slurm.sh build
    trap 'bash tests/slurm/newer-slurm.sh run bash tests/slurm/cluster.sh stop >/dev/null 2>&1 || true' EXIT
    # shellcheck disable=SC2016
    bash tests/slurm/newer-slurm.sh run bash -c '
        bash tests/slurm/cluster.sh stop &&  # its daemons must see this checkout (see newer-slurm.sh)
        eval "$(bash tests/slurm/cluster.sh start --nodes 2 '"$production"')" &&
        JSC_REQUIRE_TORCH= exec "$PYTHON" -m pytest -p no:cacheprovider -q \
            -m "slurm and not several_cpus" -k "not pytorch" "$@"
    ' bash "${newer_slurm_tests[@]}" "$@"
fi
