#!/usr/bin/env bash
# Benchmarks, side by side with submitit (installed from PyPI into the project's venv).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'; }
.venv/bin/pip install -q submitit
.venv/bin/python benchmarks/bench_core.py "$@"
# Large states: ours, np.save+fsync and submitit 1.5.4 (pip install --target a temporary folder).
.venv/bin/python benchmarks/bench_payload.py
