#!/usr/bin/env bash
# A newer Slurm than this machine's, for the test suite: Debian 13's slurm-wlm (Slurm 24.11) in a
# Debian 13 tree made with debootstrap, its daemons and the tests run inside it.
#
#   tests/slurm/newer-slurm.sh build        # the tree, once per machine (then reused); idempotent
#   tests/slurm/newer-slurm.sh run CMD...   # CMD inside the tree, in this checkout (at /src)
#   tests/slurm/newer-slurm.sh path         # where the tree is
#
#   tests/slurm/newer-slurm.sh run bash -c \
#       'eval "$(bash tests/slurm/cluster.sh start --cgroup)" && $PYTHON -m pytest -m slurm ...'
#
# Why a tree: Debian 12 has no Slurm newer than 22.05, and Slurm 24.11 refuses clients older than
# 23.02, so the 24.11 daemons, their commands and the Python that calls them all run in it.
#
# The tree is built from the Debian archive this machine's apt already uses (read from
# /etc/apt/sources.list.d/ and /etc/apt/sources.list; nothing about it is written into the
# repository): debootstrap's minimal base, then Slurm, munge, slurmdbd and MariaDB with apt, then
# a Python venv at /opt/jsc-venv with the test dependencies of pyproject.toml (pip). It lives in
# $JSC_NEWER_SLURM_TREE (default /var/cache/jupyter-slurm-ckpt/debian13) and is built into a
# temporary folder that is renamed when complete, so a killed build leaves no half tree. The venv
# is brought up to date whenever pyproject.toml changes.
#
# `run` enters the tree in a mount namespace of its own (unshare -m), so that nothing it mounts is
# seen outside or outlives it: a fresh /proc, this machine's /sys (with its cgroup hierarchies)
# and /dev, and this checkout at /src. The environment inside is clean: PATH, HOME, LANG, every
# JSC_* variable and XDG_RUNTIME_DIR of the caller, and PYTHON=/opt/jsc-venv/bin/python, whose
# site-packages finds the package in /src. Daemons keep the mounts of the `run` that started them:
# the jobs of a cluster started from another checkout run that checkout's code. Start the cluster
# in the same `run` as the tests, after a `cluster.sh stop`.
#
# Root only (debootstrap, chroot, mounts).

set -euo pipefail

SUITE=trixie                                  # Debian 13: slurm-wlm 24.11
TREE=${JSC_NEWER_SLURM_TREE:-/var/cache/jupyter-slurm-ckpt/debian13}
TREE=${TREE%/}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=/opt/jsc-venv                            # inside the tree
# What the tree's Slurm needs (cluster.sh runs munged, slurmctld, slurmd, and for --accounting
# mariadbd + slurmdbd) and what the tests need (python3 with venv, ps for process checks).
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server python3 python3-venv ca-certificates procps)
# Test dependencies that only the browser tests, the linters or the wheel build use.
NOT_INSIDE=(ruff mypy playwright build hatch-jupyter-builder notebook jupyterlab)

log() { echo "newer-slurm.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

apt_mirror() {  # the Debian archive of this machine's release, as apt has it
    local codename files uri
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || die "cannot tell this machine's Debian release (/etc/os-release)"
    files=(/etc/apt/sources.list.d/*.sources)
    # deb822 (.sources): the first URI of a paragraph whose Suites has the release itself.
    uri=$(awk -v suite="$codename" '
        BEGIN { RS = ""; FS = "\n" }
        {
            uris = ""; found = 0
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris = u[1] }
                if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) found = 1 }
            }
            if (found && uris != "") { print uris; exit }
        }' "${files[@]}" 2>/dev/null || true)
    if [[ -z $uri ]]; then  # one-line style: deb [options] URI SUITE COMPONENTS...
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            sed -E 's/\[[^]]*\]//' |
            awk -v suite="$codename" '$1 == "deb" && $3 == suite { print $2; exit }' || true)
    fi
    [[ -n $uri ]] || die "no Debian archive for '$codename' in /etc/apt/sources.list(.d): cannot build the tree"
    echo "${uri%/}"
}

# enter [--no-checkout] CMD... : CMD inside the tree, in a mount namespace that ends with it
enter() {
    local bind=yes
    [[ $1 == --no-checkout ]] && { bind=; shift; }
    local -a keep=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                   "HOME=/root" "LANG=C.UTF-8" "TERM=${TERM:-dumb}" "PYTHON=$VENV/bin/python")
    local name
    for name in $(compgen -e); do
        [[ $name == JSC_* || $name == XDG_RUNTIME_DIR ]] && keep+=("$name=${!name}")
    done
    unshare --mount --propagation private -- bash -euc '
        tree=$1 checkout=$2 bind=$3; shift 3
        mount -t proc proc "$tree/proc"
        mount --rbind /sys "$tree/sys"
        mount --rbind /dev "$tree/dev"
        if [[ -n $bind ]]; then
            mkdir -p "$tree/src"
            mount --bind "$checkout" "$tree/src"
        fi
        cp -L /etc/resolv.conf "$tree/etc/resolv.conf"   # apt and pip reach the network
        cd "$tree"
        exec chroot "$tree" "$@"
    ' bash "$TREE" "$CHECKOUT" "$bind" /usr/bin/env -i "${keep[@]}" bash -c 'cd /src 2>/dev/null || cd /; exec "$@"' bash "$@"
}

build_base() {  # debootstrap + the packages, into a temporary tree renamed into place
    local mirror new=$TREE.new
    [[ -e $TREE ]] && die "$TREE exists but has no Slurm: not a tree of ours? Remove it and build again"
    mirror=$(apt_mirror)
    command -v debootstrap >/dev/null || {
        log "installing debootstrap with apt-get"
        { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
        } >&2 || die "apt-get install debootstrap failed"
    }
    log "building the Debian 13 tree from $mirror (debootstrap, then apt-get: a few minutes)"
    rm -rf "$new"
    mkdir -p "$(dirname "$TREE")"
    debootstrap --variant=minbase "$SUITE" "$new" "$mirror" >"$TREE.build.log" 2>&1 ||
        die "debootstrap failed; see $TREE.build.log"
    # Package scripts must not start daemons inside the tree (cluster.sh starts its own).
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
    chmod 755 "$new/usr/sbin/policy-rc.d"
    TREE=$new enter --no-checkout bash -euc '
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q --no-install-recommends "$@"
    ' bash "${PACKAGES[@]}" >>"$TREE.build.log" 2>&1 ||
        die "apt-get install in the tree failed; see $TREE.build.log"
    TREE=$new enter --no-checkout apt-get clean
    mv "$new" "$TREE"
}

requirements() {  # pyproject.toml's notebook + test dependencies, less those of NOT_INSIDE
    python3 - "$CHECKOUT/pyproject.toml" "${NOT_INSIDE[@]}" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
skip = set(sys.argv[2:])
for spec in project["dependencies"] + extras["notebook"] + extras["test"]:
    name = re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]
    if name not in skip and name != project["name"]:
        print(spec)
EOF
}

build_venv() {  # /opt/jsc-venv in the tree, for this pyproject.toml (a stamp says which)
    local stamp
    stamp=.installed-$(sha1sum "$CHECKOUT/pyproject.toml" | cut -c1-12)
    [[ -e $TREE$VENV/$stamp ]] && return 0
    log "installing the test dependencies into the tree's $VENV (pip)"
    mapfile -t wanted < <(requirements)
    # pip checks certificates against this machine's bundle (which may hold a site's own CA,
    # e.g. a proxy's), not only Debian's.
    cp -L /etc/ssl/certs/ca-certificates.crt "$TREE/etc/ssl/certs/host-ca-certificates.crt"
    enter --no-checkout bash -euc '
        venv=$1; shift
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            --cert /etc/ssl/certs/host-ca-certificates.crt "$@"
        site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()[\"purelib\"])")
        echo /src >"$site/jupyter_slurm_ckpt-source.pth"   # the checkout, bound at /src
    ' bash "$VENV" "${wanted[@]}" >>"$TREE.build.log" 2>&1 ||
        die "pip install in the tree failed; see $TREE.build.log"
    rm -f "$TREE$VENV"/.installed-*
    touch "$TREE$VENV/$stamp"
}

do_build() {
    [[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
    mkdir -p "$(dirname "$TREE")"
    exec 9>"$TREE.lock"
    flock 9
    local t0=$SECONDS
    [[ -x $TREE/usr/sbin/slurmctld ]] || build_base
    build_venv
    log "tree ready in $(( SECONDS - t0 )) s: $TREE ($(enter --no-checkout slurmd -V))"
}

cmd=${1:-}
shift || true
case $cmd in
    build) (( $# == 0 )) || die "usage: $0 build"; do_build ;;
    run)
        (( $# > 0 )) || die "usage: $0 run CMD..."
        [[ -x $TREE$VENV/bin/python ]] || die "no tree at $TREE: run \`$0 build\` first"
        enter "$@"
        ;;
    path) echo "$TREE" ;;
    *) die "usage: $0 build | run CMD... | path" ;;
esac
