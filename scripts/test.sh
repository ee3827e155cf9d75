#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts what the tests need, runs them.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh -k magic   extra arguments go to every pytest run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/system-deps.sh
(cd labextension && npm ci --no-audit --no-fund --loglevel=error && npm test --silent)
bash scripts/setup.sh
.venv/bin/ruff check jupyter_slurm_ckpt tests benchmarks scripts
.venv/bin/mypy
pytest=(.venv/bin/python -m pytest -p no:cacheprovider -q)

# Everything but Slurm first; then the Slurm tests on a real single-node cluster, in both
# modes (without accounting: the squeue/scontrol fallback; with it: sacct).
"${pytest[@]}" -m "not slurm" "$@"

# The kernel tests again with kernels on ipykernel 6 (.venv has 7): a small second venv with
# what a kernel and its local jobs import, and this checkout's package on its path.
kernel6=.venv-ipykernel6
if [ ! -x "$kernel6/bin/python" ]; then
    python3 -m venv "$kernel6"
    "$kernel6/bin/python" -m pip install -q "ipykernel>=6,<7" "ipywidgets>=8" "cloudpickle>=3.0" \
        numpy tqdm
fi
"$kernel6/bin/python" -c 'import pathlib, sys, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
(site / "jupyter_slurm_ckpt-source.pth").write_text(sys.argv[1] + "\n")' "$PWD"
JSC_KERNEL_PYTHON="$PWD/$kernel6/bin/python" JSC_KERNEL_IPYKERNEL=6 \
    "${pytest[@]}" -m "kernel and not slurm" "$@"

if compgen -G "tests/slurm/test_*.py" >/dev/null; then
    trap 'bash tests/slurm/cluster.sh stop >/dev/null 2>&1 || true' EXIT
    for mode in "" "--accounting"; do
        eval "$(bash tests/slurm/cluster.sh start $mode)"
        "${pytest[@]}" -m slurm "$@"
    done
fi
