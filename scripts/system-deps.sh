#!/usr/bin/env bash
# System packages the tests need that pip cannot provide: Debian's chromium (browser tests),
# node/npm (the labextension build), rsync and git (helpers.RsyncSnapshot; the submitit
# conformance tests). Slurm is installed by tests/slurm/cluster.sh.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v rsync >/dev/null || missing+=(rsync)
command -v git >/dev/null || missing+=(git)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
