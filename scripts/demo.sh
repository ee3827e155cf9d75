#!/usr/bin/env bash
# The main job: a checkpointed job run from a notebook, headless, on the local backend.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/run_notebook.py "${1:-notebooks/01_quickstart.ipynb}"
