#!/usr/bin/env bash
# Benchmarks, side by side with submitit 1.5.4 (installed from PyPI into the project's venv).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'; }
.venv/bin/pip install -q submitit==1.5.4
.venv/bin/python benchmarks/bench_core.py "$@"
# Job arrays of 10, 100 and 1000 elements on the local backend (on Slurm: --backend slurm with a
# cluster up; the 10,000-element local array: benchmarks/bench_local_10000.py).
.venv/bin/python benchmarks/bench_arrays.py --backend local
# Large states: ours, np.save+fsync and submitit 1.5.4 (pip install --target a temporary folder).
.venv/bin/python benchmarks/bench_payload.py
