#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts what the tests need, runs them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ruff check jupyter_slurm_ckpt tests benchmarks scripts
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
