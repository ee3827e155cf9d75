#!/usr/bin/env bash
# Create .venv with the package and its test dependencies (idempotent, quick when done already).
# Sourced by demo.sh and test.sh; usable alone: `bash scripts/setup.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -e "$stamp" ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
