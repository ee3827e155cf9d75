#!/usr/bin/env bash
# A real OpenSSH server on this machine, with a "laptop" user and a "cluster" user, for the tests
# of the SSH backend (tests/ssh/).
#
#   tests/ssh/sshd.sh start    # idempotent; prints `export JSC_SSH_...=...` lines
#   tests/ssh/sshd.sh stop     # idempotent; leaves no process of ours behind
#   tests/ssh/sshd.sh status   # exit 0 when sshd answers, 1 when not
#   tests/ssh/sshd.sh refresh  # copy this checkout's package into both users' environments
#
#   eval "$(bash tests/slurm/cluster.sh start)"; eval "$(bash tests/ssh/sshd.sh start)"
#
# Runs as root on Debian 12, no systemd. What `start` sets up (each step only when missing):
# - Debian's openssh-server (installed with apt-get when sshd is missing), with host keys, a
#   configuration and a log of its own under $JSC_SSH_DIR (default /tmp/jupyter-slurm-ckpt-sshd),
#   listening on 127.0.0.1:$JSC_SSHD_PORT (default 2222) only; public keys only, for the cluster
#   user only. Its sessions get SLURM_CONF (the running test cluster's, if any), as a login
#   node's sessions find their cluster.
# - The cluster user ($JSC_SSH_CLUSTER_USER, default jsc-cluster): a home of its own (0700) that
#   holds its job folders, and a Python environment there (~/env: cloudpickle and this package)
#   that its jobs run with. It submits with sbatch to the test Slurm cluster.
# - The laptop user ($JSC_SSH_LAPTOP_USER, default jsc-laptop): a home of its own (0700), an
#   ed25519 key the cluster user accepts, ~/.ssh/config naming the server `login-node`, the
#   server's host key in ~/.ssh/known_hosts (host key checking stays on), and a Python
#   environment for its kernels (~/env: ipykernel, ipywidgets, the same cloudpickle, this
#   package). It cannot read the cluster user's home: only SSH reaches its jobs.
# Both environments are made from a Python every user can run (/usr/bin/python3), with the
# cloudpickle version of .venv; the package is copied in (the checkout may be unreadable to
# them), again at every start. The cluster user also has ~/env-skew, with another cloudpickle
# (what the version check at connect must refuse), and the laptop's has jupyter_server (the
# sidebar's server, listing remote job roots).
#
# Only the export lines go to stdout; the rest to stderr. Env overrides: JSC_SSH_DIR,
# JSC_SSHD_PORT, JSC_SSH_LAPTOP_USER, JSC_SSH_CLUSTER_USER, JSC_SSH_PYTHON (the base Python).

set -euo pipefail

DIR=${JSC_SSH_DIR:-/tmp/jupyter-slurm-ckpt-sshd}
DIR=${DIR%/}
PORT=${JSC_SSHD_PORT:-2222}
LAPTOP=${JSC_SSH_LAPTOP_USER:-jsc-laptop}
CLUSTER=${JSC_SSH_CLUSTER_USER:-jsc-cluster}
HOST_ALIAS=login-node
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SKEWED_CLOUDPICKLE=3.0.0
CONFIG=$DIR/sshd_config
PIDFILE=$DIR/sshd.pid

log() { echo "sshd.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

home_of() { getent passwd "$1" | cut -d: -f6; }

sshd_pid() {  # the pid of our sshd listener, if it is alive
    local pid
    [[ -s $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == sshd ]] || return 1
    echo "$pid"
}

answers() { timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && head -c 4 <&3" 2>/dev/null | grep -q SSH-; }

ensure_packages() {
    local missing=()
    command -v sshd >/dev/null || [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v ssh >/dev/null || missing+=(openssh-client)
    base_python >/dev/null 2>&1 || missing+=(python3 python3-venv)
    (( ${#missing[@]} == 0 )) && return 0
    log "installing ${missing[*]} with apt-get"
    # No system-wide sshd may start beside ours (policy-rc.d, as cluster.sh does).
    local policy=/usr/sbin/policy-rc.d own_policy= rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
            --no-install-recommends "${missing[@]}"
    } >&2 || rc=$?
    [[ -n $own_policy ]] && rm -f "$policy"
    (( rc == 0 )) || die "apt-get install ${missing[*]} failed"
}

base_python() {  # a Python 3 with venv that every user may run
    local candidate
    for candidate in ${JSC_SSH_PYTHON:-} /usr/bin/python3 /usr/local/bin/python3; do
        [[ -x $candidate ]] && "$candidate" -c 'import venv, ensurepip' 2>/dev/null &&
            { echo "$candidate"; return 0; }
    done
    return 1
}

ensure_user() {  # ensure_user NAME : an account with a private home, unlocked for key logins
    local name=$1 home
    if ! getent passwd "$name" >/dev/null; then
        useradd --create-home --shell /bin/bash "$name" >&2
    fi
    usermod -p '*' "$name"   # no password, yet not "locked": sshd accepts its keys
    home=$(home_of "$name")
    chmod 700 "$home"
    install -d -m 700 -o "$name" -g "$name" "$home/.ssh"
}

# ---------------------------------------------------------------------------------------------

write_config() {
    local slurm_conf=${SLURM_CONF:-}
    cat >"$CONFIG" <<EOF
# Generated by tests/ssh/sshd.sh; rewritten at every start.
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/ssh_host_ed25519_key
PidFile $PIDFILE
AllowUsers $CLUSTER
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes yes
PermitRootLogin no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    # What a login node's sessions know: where the cluster is.
    [[ -n $slurm_conf ]] && echo "SetEnv SLURM_CONF=$slurm_conf" >>"$CONFIG"
    true
}

keys() {
    local laptop_home cluster_home key
    [[ -s $DIR/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "jsc-test-sshd" -f "$DIR/ssh_host_ed25519_key"
    laptop_home=$(home_of "$LAPTOP")
    cluster_home=$(home_of "$CLUSTER")
    key=$laptop_home/.ssh/id_ed25519
    if [[ ! -s $key ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "$LAPTOP@laptop" -f "$key"
        chown "$LAPTOP:$LAPTOP" "$key" "$key.pub"
    fi
    install -m 600 -o "$CLUSTER" -g "$CLUSTER" "$key.pub" "$cluster_home/.ssh/authorized_keys"
    printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" |
        install -m 644 -o "$LAPTOP" -g "$LAPTOP" /dev/stdin "$laptop_home/.ssh/known_hosts"
    cat <<EOF | install -m 600 -o "$LAPTOP" -g "$LAPTOP" /dev/stdin "$laptop_home/.ssh/config"
# Written by tests/ssh/sshd.sh: the test cluster's login node.
Host $HOST_ALIAS
    HostName 127.0.0.1
    Port $PORT
    User $CLUSTER
EOF
}

cloudpickle_version() {
    "$CHECKOUT/.venv/bin/python" -c 'import cloudpickle; print(cloudpickle.__version__)'
}

make_env() {  # make_env USER ENV PACKAGES... : ~USER/ENV with these packages and this checkout's
    local user=$1 home env stamp python
    home=$(home_of "$user")
    env=$home/$2
    shift 2
    stamp="$env/.jsc-$(echo "$*" | sha1sum | cut -c1-12)"
    if [[ ! -e $stamp ]]; then
        python=$(base_python) || die "no Python 3 with venv that $user can run"
        log "making $env ($*)"
        rm -rf "$env"
        "$python" -m venv "$env"
        "$env/bin/python" -m pip install -q --disable-pip-version-check "$@" >&2
        touch "$stamp"
    fi
    copy_package "$env"
    chown -R "$user:$user" "$env"
}

copy_package() {  # copy_package ENV : this checkout's package into ENV (the sidebar's assets left out)
    local env=$1 site
    site=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -rf "$site/jupyter_slurm_ckpt"
    mkdir -p "$site/jupyter_slurm_ckpt"
    (cd "$CHECKOUT" && tar --exclude=__pycache__ --exclude=labextension -cf - jupyter_slurm_ckpt) |
        tar -C "$site" -xf -
}

refresh() {
    local user env
    for user in "$CLUSTER" "$LAPTOP"; do
        for env in "$(home_of "$user")"/env*; do
            [[ -x $env/bin/python ]] || continue
            copy_package "$env"
            chown -R "$user:$user" "$env"
        done
    done
}

do_start() {
    ensure_packages
    mkdir -p "$DIR" /run/sshd
    chmod 755 "$DIR"
    ensure_user "$CLUSTER"
    ensure_user "$LAPTOP"
    keys
    local pickle
    pickle="cloudpickle==$(cloudpickle_version)"
    make_env "$CLUSTER" env "$pickle"
    # Another cloudpickle: a cluster environment this package's kernels cannot submit to.
    make_env "$CLUSTER" env-skew "cloudpickle==$SKEWED_CLOUDPICKLE"
    make_env "$LAPTOP" env "$pickle" ipykernel "ipywidgets>=8" jupyter_client jupyter_server \
        traitlets numpy
    write_config
    /usr/sbin/sshd -t -f "$CONFIG" || die "sshd refuses $CONFIG"
    if pid=$(sshd_pid); then  # running: let it read the (maybe new) configuration
        kill -HUP "$pid"
    else
        /usr/sbin/sshd -f "$CONFIG" -E "$DIR/sshd.log" || die "sshd did not start (see $DIR/sshd.log)"
    fi
    local t0=$SECONDS
    until answers; do
        (( SECONDS - t0 < 20 )) || die "sshd does not answer on 127.0.0.1:$PORT (see $DIR/sshd.log)"
        sleep 0.1
    done
    # The laptop user logs in as the cluster user, with its key and its known host key.
    runuser -u "$LAPTOP" -- ssh -o BatchMode=yes "$HOST_ALIAS" true ||
        die "$LAPTOP cannot log in to $HOST_ALIAS (see $DIR/sshd.log)"
    log "up on 127.0.0.1:$PORT ($LAPTOP -> $CLUSTER@$HOST_ALIAS)"
    echo "export JSC_SSH_DIR=$DIR JSC_SSHD_PORT=$PORT JSC_SSH_LAPTOP_USER=$LAPTOP" \
        "JSC_SSH_CLUSTER_USER=$CLUSTER JSC_SSH_HOST=$HOST_ALIAS"
}

do_stop() {
    local pid
    if pid=$(sshd_pid); then
        # The listener and the sessions it forked (their parent is the listener).
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        local t0=$SECONDS
        while kill -0 "$pid" 2>/dev/null; do
            (( SECONDS - t0 < 10 )) || { kill -KILL "$pid" 2>/dev/null || true; break; }
            sleep 0.1
        done
    fi
    rm -f "$PIDFILE"
    log "stopped"
}

case ${1:-} in
    start) do_start ;;
    stop) do_stop ;;
    status) sshd_pid >/dev/null && answers ;;
    refresh) refresh ;;
    *) echo "usage: $0 start|stop|status|refresh" >&2; exit 2 ;;
esac
