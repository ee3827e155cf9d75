#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the test suite.
#
#   tests/slurm/cluster.sh start [--accounting] [--preemption signal|stock] [--cgroup] [--nodes N]
#                                [--cpus N]       # idempotent; prints `export SLURM_CONF=...`
#   tests/slurm/cluster.sh stop                   # idempotent; leaves no process behind
#   tests/slurm/cluster.sh status                 # exit 0 when up, 1 when not
#   tests/slurm/cluster.sh controller stop|start  # slurmctld alone (a controller that is away)
#
#   eval "$(tests/slurm/cluster.sh start)"        # then sbatch/squeue/scontrol/sinfo work
#   eval "$(tests/slurm/cluster.sh start --accounting)"   # same, plus slurmdbd so sacct works
#
# Runs as root on Debian 12 (Slurm 22.05, no systemd), or inside tests/slurm/newer-slurm.sh's
# Debian 13 tree (Slurm 24.11): the configuration fits the version it finds. Installs slurm-wlm + munge
# (and slurmdbd + mariadb-server for --accounting) with apt-get when they are missing. Every
# daemon (munged, slurmctld, slurmd, and with --accounting mariadbd + slurmdbd) is started by hand
# with its config, pid file, log and state under one folder: $JSC_CLUSTER_DIR, default
# /tmp/jupyter-slurm-ckpt-cluster. Logs: $JSC_CLUSTER_DIR/log/*.log.
#
# Without --accounting there is no accounting storage at all, so `sacct` fails with "Slurm
# accounting storage is disabled" (the mode our squeue/scontrol fallback is tested in).
#
# --preemption signal (default): SlurmctldParameters=preempt_send_user_signal, so a preempted job
# gets its --signal USR2 at once. --preemption stock: as most clusters are, without it: a
# preempted job gets no USR2, only SIGCONT+SIGTERM when its partition's GraceTime is over.
#
# --cgroup: as production clusters run: processes tracked in cgroups (proctrack/cgroup, which
# signals only the direct children of slurmstepd, except SIGKILL), CPUs bound and memory limited
# (task/cgroup,task/affinity with ConstrainCores and ConstrainRAMSpace, CR_Core_Memory,
# PrologFlags=Contain). Without it: proctrack/linuxproc (signals the whole process tree), no task
# binding, nothing enforced. cgroup v1, which this machine mounts read-write under /sys/fs/cgroup:
# the cluster keeps to its own part of each hierarchy (jsc-<folder>-<hash>, see prepare_cgroups),
# so that two clusters with nodes of the same names never share a job's cgroup.
#
# --nodes N (default 1): N emulated nodes n1..nN on this one machine, each its own `slurmd -N nI`
# (all resolve to 127.0.0.1, so the ranks of a multi-node job reach each other over TCP). Each
# node has every CPU of the machine and two fake GPUs (GRES gpu, fake device files), so that
# --gpus-per-node is scheduled and exported as on a GPU cluster. --cpus N gives each node N CPUs
# instead (more than the machine has: many small jobs at once, e.g. for benchmarks/bench_polling.py;
# with --cgroup Slurm binds them onto the CPUs the machine has: --cpus 4 on 2 CPUs gives two tasks
# of 2 CPUs one real CPU each, enough to see that each task gets its own).
#
# Only the `export SLURM_CONF=...` line of `start` goes to stdout; all other chatter to stderr.
# Env overrides: JSC_CLUSTER_DIR, JSC_SLURMCTLD_PORT (6817), JSC_SLURMD_PORT (6818),
# JSC_SLURMDBD_PORT (6819), JSC_MYSQL_PORT (3399); JSC_KEEP_ON_FAIL=1 leaves the daemons of a
# failed start running for inspection (default: they are stopped).

set -euo pipefail

DIR=${JSC_CLUSTER_DIR:-/tmp/jupyter-slurm-ckpt-cluster}
DIR=${DIR%/}
CTLD_PORT=${JSC_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${JSC_SLURMD_PORT:-6818}
DBD_PORT=${JSC_SLURMDBD_PORT:-6819}
MYSQL_PORT=${JSC_MYSQL_PORT:-3399}

ETC=$DIR/etc
RUN=$DIR/run
LOG=$DIR/log
CONF=$ETC/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCK_DIR=$MUNGE_DIR/socket          # mode 755, else clients cannot reach the socket
MUNGE_SOCK=$MUNGE_SOCK_DIR/munge.socket.2
MYSQL_DIR=$DIR/mysql
MODE_FILE=$DIR/mode                        # "plain" or "accounting" while the cluster is up
HOST=$(hostname -s)
NODES_FILE=$DIR/nodes                      # how many emulated nodes the cluster has
GPUS_PER_NODE=2
FAKE_GPU_DIR=$DIR/dev                      # fake GPU device files (see start_slurmd)
CGROUP_DIR=$DIR/cgroup                     # --cgroup: Slurm's CgroupMountpoint (see prepare_cgroups)

log() { echo "cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# helpers

pid_of() {  # pid_of NAME -> pid of a live daemon started by us (pid file + matching comm), or fail
    local f=$RUN/$1.pid pid comm
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    alive "$pid" || return 1   # killed but not yet reaped counts as dead
    case $1 in
        mariadbd) [[ $comm == mariadbd || $comm == mysqld ]] || return 1 ;;
        slurmd-*) [[ $comm == slurmd ]] || return 1 ;;
        *) [[ $comm == "$1" ]] || return 1 ;;
    esac
    echo "$pid"
}

node_names() {  # the emulated nodes of the cluster: n1 .. nN
    local count=1 i
    [[ -s $NODES_FILE ]] && count=$(<"$NODES_FILE")
    for (( i = 1; i <= count; i++ )); do echo "n$i"; done
}

daemons_for() {  # daemons_for MODE -> start order (one slurmd-nI per emulated node)
    local slurmds
    slurmds=$(node_names | sed 's/^/slurmd-/' | tr '\n' ' ')
    if [[ $1 == accounting ]]; then
        echo munged mariadbd slurmdbd slurmctld $slurmds
    else
        echo munged slurmctld $slurmds
    fi
}

running_mode() {  # prints the mode when every daemon of the recorded mode is alive
    local mode d
    [[ -s $MODE_FILE ]] || return 1
    mode=$(<"$MODE_FILE")
    for d in $(daemons_for "$mode"); do
        pid_of "$d" >/dev/null || return 1
    done
    echo "$mode"
}

all_daemons() {  # every daemon that may have a pid file of ours, running or not
    local f
    printf "%s\n" munged mariadbd slurmdbd slurmctld
    for f in "$RUN"/slurmd*.pid; do [[ -e $f ]] && basename "$f" .pid; done
    true
}

any_daemon_alive() {
    local d
    for d in $(all_daemons); do
        pid_of "$d" >/dev/null && return 0
    done
    return 1
}

wait_for() {  # [WAIT_DAEMON=NAME] wait_for SECONDS WHAT CMD... : poll CMD every 0.1 s
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS - start >= limit )); then
            log "timed out after ${limit}s waiting for $what"
            return 1
        fi
        # give up early when the daemon we wait for has died
        if [[ -n ${WAIT_DAEMON:-} ]] && (( SECONDS - start >= 2 )) && ! pid_of "$WAIT_DAEMON" >/dev/null; then
            log "$WAIT_DAEMON died"
            return 1
        fi
        sleep 0.1
    done
}

show_logs() {
    local f
    for f in "$LOG"/*.log "$LOG"/*.out; do
        [[ -f $f ]] || continue
        log "---- tail of $f"
        tail -n 15 "$f" >&2 || true
    done
}

fail_start() {  # show the logs, stop what was started, fail
    log "ERROR: $*"
    show_logs
    if [[ -n ${JSC_KEEP_ON_FAIL:-} ]]; then
        log "JSC_KEEP_ON_FAIL set: leaving the daemons running for inspection"
        rm -f "$MODE_FILE"   # so that the next start restarts them
    else
        log "stopping what was started"
        do_stop || true
    fi
    exit 1
}

# launch [--bg] NAME CMD... : run a daemon (or the command that daemonizes it) detached from every
# file descriptor of the caller: stdin /dev/null, stdout+stderr to $LOG/NAME.out, all other fds
# closed. Otherwise a daemon keeps e.g. the pipe of `eval "$(cluster.sh start)"` or a test's
# captured stderr open, and the caller waits forever. --bg: CMD does not daemonize itself; run it
# in the background, in its own session (no shell of ours stays around holding those fds).
launch() {
    local bg=
    [[ $1 == --bg ]] && { bg=1; shift; }
    local name=$1
    shift
    [[ -n $bg ]] && set -- setsid "$@"
    (
        for fd in "/proc/$BASHPID/fd/"*; do
            fd=${fd##*/}
            (( fd > 2 )) && eval "exec $fd>&-"
        done
        JSC_CLUSTER_MARK=$DIR exec "$@"
    ) </dev/null >>"$LOG/$name.out" 2>&1 &
    local pid=$!
    [[ -n $bg ]] || wait "$pid"
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

ensure_packages() {
    local want=(slurm-wlm munge) missing=() p
    [[ $1 == accounting ]] && want+=(slurmdbd mariadb-server)
    for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    (( ${#missing[@]} == 0 )) && return 0
    log "installing ${missing[*]} with apt-get"
    # The packages' maintainer scripts must not start system-wide daemons (munge, mariadb, slurm)
    # beside ours: where no policy-rc.d forbids it already, put one in place for the install.
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    } >&2 || rc=$?
    [[ -n $own_policy ]] && rm -f "$policy"
    (( rc == 0 )) || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------------
# configuration

write_configs() {  # write_configs MODE PREEMPTION CGROUP NODES CPUS OUTDIR : slurm.conf, gres.conf,
                   # cgroup.conf (+ slurmdbd.conf)
    local mode=$1 preemption=$2 cgroup=$3 nodes=$4 cpus=$5 out=$6 mem_kb mem_mb i names=n1
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)   # same figure as `free`'s total
    mem_mb=$(( mem_kb * 95 / 100 / 1024 / nodes ))            # ~95 % of MemTotal, shared by the nodes
    (( nodes > 1 )) && names="n[1-$nodes]"

    cat >"$out/slurm.conf" <<EOF
# Generated by tests/slurm/cluster.sh ($mode mode, $preemption preemption, cgroup: $cgroup,
# $nodes node(s); Slurm $(slurm_version)).
# Do not edit: rewritten at every start.
ClusterName=jsc
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT

# munge with our own key and socket. cred_expire=5 (default 120, minimum 5): a requeued job gets
# BeginTime = now + cred_expire + 1, so requeue -> RUNNING takes ~6 s instead of minutes.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK,cred_expire=5

StateSaveLocation=$DIR/spool/ctld
# One slurmd per emulated node (%n: the node's name).
SlurmdSpoolDir=$DIR/spool/d-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info

$(tracking_lines "$cgroup")
MpiDefault=none
# Resource limits of the submitting shell are not copied into jobs (avoids setrlimit noise).
PropagateResourceLimits=NONE
# The nodes may claim more CPUs than the machine has (--cpus): slurmd takes the configured count.
SlurmdParameters=config_overrides

SelectType=select/cons_tres
$(consumable_lines "$cgroup" "$(( mem_mb / cpus ))")

# Scheduler every second (main and backfill; defaults 60 s / 30 s) and no batching delay for new
# batch jobs: new and requeued jobs start within ~1 s of being eligible.
SchedulerParameters=sched_interval=1,bf_interval=1,batch_sched_delay=0

# Preemption: jobs of a higher-PriorityTier partition (high) requeue jobs of lower ones (low).
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$(preemption_lines "$preemption")

# Fake GPUs (gres.conf names their fake device files): scheduled and exported (CUDA_VISIBLE_DEVICES,
# SLURM_GPUS_ON_NODE) as on a GPU cluster.
GresTypes=gpu
# Batch jobs may be requeued (scontrol requeue, preemption, node failure).
JobRequeue=1

# Fast teardown: SIGKILL 5 s after SIGTERM (default 30 s) when a job is cancelled/preempted/timed
# out; RPC timeout 5 s (default 10 s) so a dead daemon is noticed quickly.
KillWait=5
MessageTimeout=5
# Finished jobs stay visible to squeue/scontrol for 300 s: without accounting storage that is
# the only place their final state can be read, so this must outlast a test.
MinJobAge=300
# Job records slurmctld keeps, each array element one, finished ones for MinJobAge: the default
# (10000) is ten 1000-element arrays in 5 minutes, fewer than benchmarks/bench_arrays.py submits.
MaxJobCount=50000
# Never cancel jobs whose srun went away (default, stated for clarity).
InactiveLimit=0
# A DOWN node (e.g. after a restart of slurmd) comes back to service as soon as it registers.
ReturnToService=2
# No mail (the default MailProg is not installed and slurmctld logs an error about it).
MailProg=/bin/true

EOF
    if [[ $mode == accounting ]]; then
        cat >>"$out/slurm.conf" <<EOF
# Accounting through slurmdbd (-> MariaDB), so sacct works. slurmdbd connections ignore AuthInfo:
# AccountingStoragePass names the munge socket for them (without it slurmctld dies: "no TRES").
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCK

EOF
    else
        cat >>"$out/slurm.conf" <<EOF
# No accounting storage at all (AccountingStorageType unset: none): sacct fails with "Slurm
# accounting storage is disabled".

EOF
    fi
    # The emulated nodes: one slurmd each, on its own port, all on this machine.
    for (( i = 1; i <= nodes; i++ )); do
        echo "NodeName=n$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$(node_port "$i")" \
            "CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$GPUS_PER_NODE State=UNKNOWN" >>"$out/slurm.conf"
    done
    cat >>"$out/slurm.conf" <<EOF
# low: default partition; its jobs are preempted (requeued) by high's. GraceTime=5: time between
# the preemption and SIGTERM (measured: SIGTERM 10-11 s after the preemption; 6 s with
# GraceTime=2). Tests may change it at run time: scontrol update partitionname=low gracetime=N
PartitionName=low Nodes=$names Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=5
# high: PriorityTier=10 preempts low.
PartitionName=high Nodes=$names Default=NO MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    # Each node's GPUs: fake device files (see start_slurmd); task/none constrains nothing.
    : >"$out/gres.conf"
    for (( i = 1; i <= nodes; i++ )); do
        echo "NodeName=n$i Name=gpu File=$FAKE_GPU_DIR/n$i-gpu[0-$(( GPUS_PER_NODE - 1 ))]" \
            >>"$out/gres.conf"
    done

    cgroup_conf "$cgroup" >"$out/cgroup.conf"

    if [[ $mode == accounting ]]; then
        cat >"$out/slurmdbd.conf" <<EOF
# Generated by tests/slurm/cluster.sh. Do not edit: rewritten at every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
        chmod 600 "$out/slurmdbd.conf"   # slurmdbd refuses a config others can read
    fi
}

slurm_version() {  # the Slurm of this machine (or tree): 22.05.8, 24.11.5...
    slurmd -V 2>/dev/null | awk '{print $2}'
}

version_at_least() {  # version_at_least 24.05 : whether this Slurm is that version or newer
    local have want
    have=$(slurm_version | awk -F. '{printf "%d%02d", $1, $2}')
    want=$(awk -F. '{printf "%d%02d", $1, $2}' <<<"$1")
    (( ${have:-0} >= want ))
}

tracking_lines() {  # tracking_lines yes|no : slurm.conf lines of process tracking and binding
    if [[ $1 == yes ]]; then
        echo "# Production settings (--cgroup): processes tracked in cgroups (every signal but SIGKILL"
        echo "# reaches only slurmstepd's direct children), CPUs and memory enforced (cgroup.conf), the"
        echo "# job's cgroup made before its processes start (Contain)."
        echo "ProctrackType=proctrack/cgroup"
        echo "TaskPlugin=task/cgroup,task/affinity"
        echo "PrologFlags=Contain"
    else
        echo "# A lab: processes tracked through /proc (signals reach the whole process tree), no task"
        echo "# binding (TaskPlugin unset: none; 22.05's task/none no longer exists in 24.x)."
        echo "ProctrackType=proctrack/linuxproc"
    fi
}

consumable_lines() {  # consumable_lines yes|no MB_PER_CPU : what the scheduler allocates
    if [[ $1 == yes ]]; then
        echo "# Cores and memory are consumable (memory is enforced): a job that asks for no memory gets"
        echo "# each of its CPUs' share of the node. A job that wants the node alone asks for --exclusive."
        echo "SelectTypeParameters=CR_Core_Memory"
        echo "DefMemPerCPU=$2"
    else
        echo "# Cores are the consumable resource (not memory), so small jobs share the node; a job that"
        echo "# wants the node alone asks for --exclusive."
        echo "SelectTypeParameters=CR_Core"
    fi
}

cgroup_conf() {  # cgroup_conf yes|no : cgroup.conf (beside slurm.conf, where Slurm looks for it)
    echo "# Generated by tests/slurm/cluster.sh. Do not edit: rewritten at every start."
    if [[ $1 == yes ]]; then
        echo "CgroupPlugin=cgroup/v1"
        echo "# This cluster's own part of each cgroup v1 hierarchy (links made by prepare_cgroups)."
        echo "CgroupMountpoint=$CGROUP_DIR"
        echo "ConstrainCores=yes"
        echo "ConstrainRAMSpace=yes"
    elif version_at_least 24.05; then
        echo "# No cgroups used (24.05+ would look for a cgroup hierarchy at every start otherwise)."
        echo "CgroupPlugin=disabled"
    fi
}

# The cgroup controllers Slurm's cgroup/v1 plugin uses.
CGROUP_CONTROLLERS=(freezer cpuset memory devices cpuacct)

cgroup_root_name() {  # this cluster's folder in each hierarchy: jsc-<folder name>-<hash of its path>
    echo "jsc-${DIR##*/}-$(printf %s "$DIR" | md5sum | cut -c1-8)"
}

prepare_cgroups() {  # $CGROUP_DIR/<controller> -> /sys/fs/cgroup/<controller>/jsc-...: Slurm
    # makes its slurm_<node>/uid_<uid>/job_<id> cgroups in there. A cpuset cgroup starts with
    # no CPUs and no memory nodes: it gets the machine's, which Slurm then divides.
    local name c base
    name=$(cgroup_root_name)
    rm -rf "$CGROUP_DIR"
    mkdir -p "$CGROUP_DIR"
    for c in "${CGROUP_CONTROLLERS[@]}"; do
        [[ -e /sys/fs/cgroup/$c/tasks ]] ||
            fail_start "no cgroup v1 $c hierarchy at /sys/fs/cgroup/$c (--cgroup needs cgroup v1)"
        base=/sys/fs/cgroup/$c/$name
        mkdir -p "$base" || fail_start "cannot make the cgroup $base"
        ln -s "$base" "$CGROUP_DIR/$c"
    done
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$name/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$name/cpuset.mems"
}

cgroup_pids() {  # every process in this cluster's cgroups: its jobs and, with 24.x, slurmstepd
    # (which overwrites its environment with its title, so leftover_pids cannot tell it is ours)
    local name c
    name=$(cgroup_root_name)
    for c in "${CGROUP_CONTROLLERS[@]}"; do
        [[ -d /sys/fs/cgroup/$c/$name ]] || continue
        find "/sys/fs/cgroup/$c/$name" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    done | sort -un
}

release_cgroups() {  # the cgroups of prepare_cgroups, removed (deepest first; once their
    # processes are gone and reaped: a cgroup with a process in it stays)
    local name c i
    name=$(cgroup_root_name)
    for c in "${CGROUP_CONTROLLERS[@]}"; do
        [[ -d /sys/fs/cgroup/$c/$name ]] || continue
        for (( i = 0; i < 100; i++ )); do   # PID 1 here may take seconds to reap
            find "/sys/fs/cgroup/$c/$name" -depth -type d -exec rmdir {} + 2>/dev/null && break
            sleep 0.1
        done
        [[ -d /sys/fs/cgroup/$c/$name ]] &&
            log "warning: cgroups left in /sys/fs/cgroup/$c/$name (processes still in them)"
    done
    rm -rf "$CGROUP_DIR"
}

# ---------------------------------------------------------------------------------------------
# daemons

start_munged() {
    mkdir -p "$MUNGE_DIR" "$MUNGE_SOCK_DIR"
    chmod 755 "$MUNGE_DIR" "$MUNGE_SOCK_DIR"   # clients must be able to reach the socket
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        mungekey --create --keyfile="$MUNGE_DIR/munge.key" >&2
    fi
    chmod 600 "$MUNGE_DIR/munge.key"
    launch munged munged --force \
        --socket="$MUNGE_SOCK" \
        --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$RUN/munged.pid" \
        --log-file="$LOG/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" || fail_start "munged did not start"
    wait_for 10 "munged" bash -c "munge -S '$MUNGE_SOCK' -n | unmunge -S '$MUNGE_SOCK'" ||
        fail_start "munged does not answer"
}

mysql_client() { mariadb --no-defaults --socket="$MYSQL_DIR/mysqld.sock" -uroot "$@"; }

start_mariadbd() {
    mkdir -p "$MYSQL_DIR"
    if [[ ! -d $MYSQL_DIR/data/mysql ]]; then
        log "initialising MariaDB data dir"
        rm -rf "$MYSQL_DIR/data"
        # A new database gives the cluster a new id: slurmctld's saved one would not match (24.11
        # refuses to start: "CLUSTER ID MISMATCH").
        rm -f "$DIR/spool/ctld/clustername"
        mariadb-install-db --no-defaults --user=root --datadir="$MYSQL_DIR/data" \
            --skip-test-db --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
            fail_start "mariadb-install-db failed (see $LOG/mariadb-install.log)"
    fi
    # A throw-away test database: no fsync per commit, no native AIO, TCP on 127.0.0.1 only.
    launch --bg mariadbd mariadbd --no-defaults --user=root \
        --datadir="$MYSQL_DIR/data" \
        --socket="$MYSQL_DIR/mysqld.sock" \
        --pid-file="$RUN/mariadbd.pid" \
        --log-error="$LOG/mariadbd.log" \
        --bind-address=127.0.0.1 --port="$MYSQL_PORT" \
        --skip-name-resolve --skip-log-bin \
        --innodb-buffer-pool-size=128M \
        --innodb-flush-log-at-trx-commit=0 \
        --innodb-use-native-aio=0 \
        --innodb-lock-wait-timeout=900
    wait_for 30 "mariadbd" mysql_client -e 'SELECT 1' || fail_start "mariadbd did not start"
    wait_for 5 "mariadbd pid file" pid_of mariadbd || fail_start "mariadbd wrote no pid file"
    # The database made here, not by slurmdbd: Slurm 24.11's slurmdbd with MariaDB 11.8 (Debian 13)
    # dies at its first start when it creates the database itself ("_check_mysql_concat_is_sane:
    # null result", measured), and starts at the next.
    mysql_client -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
                     CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
                     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
        fail_start "could not create the slurm database and its user"
}

start_slurmdbd() {
    launch slurmdbd slurmdbd || fail_start "slurmdbd did not start"
    # slurmdbd answers once it has created/checked its tables.
    WAIT_DAEMON=slurmdbd wait_for 60 "slurmdbd" bash -c "exec 3<>/dev/tcp/127.0.0.1/$DBD_PORT" ||
        fail_start "slurmdbd does not listen"
}

start_slurmctld() {
    launch slurmctld slurmctld -f "$CONF" || fail_start "slurmctld did not start"
    WAIT_DAEMON=slurmctld wait_for 30 "slurmctld" bash -c "SLURM_CONF='$CONF' scontrol ping | grep -q 'is UP'" ||
        fail_start "slurmctld does not answer"
}

start_slurmd() {  # start_slurmd NODE
    local node=$1 spool=$DIR/spool/d-$1 g
    mkdir -p "$spool" "$FAKE_GPU_DIR"
    for (( g = 0; g < GPUS_PER_NODE; g++ )); do   # character devices, as slurmd checks
        [[ -c $FAKE_GPU_DIR/$node-gpu$g ]] && continue
        rm -f "$FAKE_GPU_DIR/$node-gpu$g"
        # Major 195 is NVIDIA's; no driver answers it here, and nothing opens these files.
        mknod -m 600 "$FAKE_GPU_DIR/$node-gpu$g" c 195 "$(( ${node#n} * 16 + g ))" 2>/dev/null ||
            ln -s /dev/null "$FAKE_GPU_DIR/$node-gpu$g"   # where mknod is not allowed
    done
    # Leftovers of jobs killed with an earlier slurmd (a crash, a killed machine): their step
    # sockets make the new slurmd believe the steps still exist (the jobs stay COMPLETING), and a
    # job id reused after slurmctld lost its last state cannot launch over an old job00NNN folder.
    rm -rf "$spool/${node}"_* "$spool"/hwloc_topo_[0-9]* "$spool"/job[0-9]*
    launch "slurmd-$node" slurmd -f "$CONF" -N "$node" || fail_start "slurmd -N $node did not start"
}

HOSTS_MARK="# emulated nodes of tests/slurm/cluster.sh in $DIR"

resolve_nodes() {  # the node names resolve to this machine (as a cluster's DNS would do)
    local entry
    entry="127.0.0.1 $(node_names | tr '\n' ' ')$HOSTS_MARK"
    grep -qxF "$entry" /etc/hosts 2>/dev/null && return 0
    forget_nodes
    echo "$entry" >>/etc/hosts || log "warning: cannot add the node names to /etc/hosts"
}

forget_nodes() {  # the entry resolve_nodes added, removed (in place: /etc/hosts may be a mount)
    local kept
    grep -qF "$HOSTS_MARK" /etc/hosts 2>/dev/null || return 0
    kept=$(grep -vF "$HOSTS_MARK" /etc/hosts)
    printf '%s\n' "$kept" >/etc/hosts
}

nodes_state() {  # one word for all nodes: their state when they agree (idle), else "mixed:..."
    local states
    states=$(SLURM_CONF=$CONF sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
    states=${states% }
    [[ $states == *" "* ]] && echo "mixed:$states" || echo "$states"
}

all_nodes() { node_names | paste -sd, -; }

wait_registered() {  # a restarted slurmctld shows its nodes "unknown" until their slurmd registers
    local t0=$SECONDS states
    while :; do
        states=$(SLURM_CONF=$CONF sinfo -h -N -o '%T' 2>/dev/null) || states=unknown
        [[ -n $states && $states != *unknown* ]] && return 0
        (( SECONDS - t0 < 60 )) || die "nodes not registered 60 s after slurmctld started"
        sleep 0.1
    done
}

wait_until_usable() {
    local t0=$SECONDS state jobid ids
    # Jobs recovered from the saved state of an earlier run that did not end cleanly would keep
    # the node busy: cancel them (the saved state is kept so that job ids keep increasing).
    ids=$(SLURM_CONF=$CONF squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)
    if [[ -n ${ids// } ]]; then
        log "cancelling jobs left from an earlier run: $ids"
        # shellcheck disable=SC2086
        SLURM_CONF=$CONF scancel $ids || true
    fi
    # Node registered and idle. A DRAINED node left from an earlier run is resumed. A node still
    # busy with the jobs cancelled above after 5 s is set DOWN, which ends them (their kill may be
    # lost when the node was NOT_RESPONDING), and resumed once they are gone; again every 10 s.
    local kick_at=$(( SECONDS + 5 )) down=
    while :; do
        state=$(nodes_state)
        case $state in
            idle) break ;;
            *drain*) SLURM_CONF=$CONF scontrol update nodename="$(all_nodes)" state=resume >&2 || true ;;
        esac
        if [[ -n ${ids// } ]]; then
            if [[ -z $down ]] && (( SECONDS >= kick_at )); then
                log "nodes still ${state:-?}: setting them DOWN to end the old jobs"
                SLURM_CONF=$CONF scontrol update nodename="$(all_nodes)" state=down reason=cluster.sh-restart >&2 || true
                down=1
            elif [[ -n $down ]] && [[ -z $(SLURM_CONF=$CONF squeue -h -t R,CG,S -o '%A' 2>/dev/null) ]]; then
                SLURM_CONF=$CONF scontrol update nodename="$(all_nodes)" state=resume >&2 || true
                down=
                kick_at=$(( SECONDS + 10 ))
            fi
        fi
        (( SECONDS - t0 < 60 )) || fail_start "nodes not idle after 60 s (state: ${state:-?})"
        sleep 0.1
    done
    # A trivial batch job must run to completion.
    jobid=$(SLURM_CONF=$CONF sbatch --parsable --job-name=cluster-sh-check \
        --output=/dev/null --wrap true) || fail_start "sbatch failed"
    jobid=${jobid%%;*}
    while :; do
        state=$(SLURM_CONF=$CONF squeue -h -t all -j "$jobid" -o '%T' 2>/dev/null || true)
        case $state in
            COMPLETED) break ;;
            FAILED|CANCELLED|NODE_FAIL|TIMEOUT|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)
                fail_start "check job $jobid ended $state" ;;
        esac
        (( SECONDS - t0 < 90 )) || fail_start "check job $jobid not done after 90 s (${state:-?})"
        sleep 0.1
    done
    if [[ $(<"$MODE_FILE") == accounting ]]; then
        wait_for 30 "sacct" bash -c \
            "SLURM_CONF='$CONF' sacct -n -X --parsable2 -o State -j $jobid | grep -q COMPLETED" ||
            fail_start "sacct does not show job $jobid"
    fi
}

alive() {  # alive PID : exists and is not a zombie (PID 1 here may take seconds to reap)
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z* ]]
}

kill_pid() {  # kill_pid PID NAME : TERM, wait up to 10 s, then KILL
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for (( i = 0; i < 200; i++ )); do
        alive "$pid" || return 0
        sleep 0.05
    done
    log "$2 ($pid) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Processes of this cluster that outlived their daemon or job: anything launched by us (carries
# JSC_CLUSTER_MARK=$DIR: our daemons, slurmscriptd), slurmstepd of our slurmd and job processes
# (both have SLURM_CONF pointing at our slurm.conf; jobs also SLURM_JOB_ID). Never this script or
# its callers (a test shell has SLURM_CONF but, outside a job, no SLURM_JOB_ID).
leftover_pids() {
    local f p skip=" " q=$$
    while [[ $q =~ ^[0-9]+$ ]] && (( q > 1 )); do   # ourselves and our ancestors
        skip+="$q "
        q=$(sed 's/.*) //' "/proc/$q/stat" 2>/dev/null | awk '{print $2}' || true)
    done
    {
        grep -lzxF "JSC_CLUSTER_MARK=$DIR" /proc/[0-9]*/environ 2>/dev/null || true
        for f in $(grep -lzxF "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null || true); do
            if [[ $(cat "${f%/environ}/comm" 2>/dev/null) == slurmstepd ]] ||
               grep -qz '^SLURM_JOB_ID=' "$f" 2>/dev/null; then
                echo "$f"
            fi
        done
    } | while read -r f; do
        p=${f#/proc/}
        p=${p%/environ}
        [[ $skip == *" $p "* || $p == "$BASHPID" ]] || echo "$p"
    done | sort -un
}

do_stop() {
    local d pid i pids
    if pid_of slurmctld >/dev/null; then
        # Cancel every job so that no job process outlives slurmd.
        local ids
        ids=$(SLURM_CONF=$CONF squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)
        if [[ -n ${ids// } ]]; then
            log "cancelling jobs: $ids"
            # shellcheck disable=SC2086
            SLURM_CONF=$CONF scancel $ids 2>/dev/null || true
            for (( i = 0; i < 150; i++ )); do   # KillWait is 5 s
                [[ -z $(SLURM_CONF=$CONF squeue -h -o '%A' 2>/dev/null) ]] && break
                sleep 0.1
            done
        fi
    fi
    for d in $(all_daemons | tac); do   # the slurmds first, munged last
        if pid=$(pid_of "$d"); then
            log "stopping $d ($pid)"
            kill_pid "$pid" "$d"
        fi
        rm -f "$RUN/$d.pid"
    done
    pids=$( { leftover_pids; cgroup_pids; } | sort -un)
    if [[ -n $pids ]]; then
        log "killing leftover job processes: ${pids//$'\n'/ }"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        for (( i = 0; i < 100; i++ )); do   # gone, so that their cgroups can be removed
            [[ -z $(for p in $pids; do alive "$p" && echo "$p"; done) ]] && break
            sleep 0.05
        done
    fi
    release_cgroups
    forget_nodes
    rm -f "$MODE_FILE"
}

do_start() {
    local mode=$1 preemption=$2 cgroup=$3 nodes=$4 cpus=$5 tmp node
    [[ $(id -u) == 0 ]] || die "must run as root"
    ensure_packages "$mode"
    mkdir -p "$ETC" "$RUN" "$LOG" "$DIR/spool/ctld"
    chmod 755 "$DIR"

    tmp=$(mktemp -d "$DIR/etc.new.XXXXXX")
    write_configs "$mode" "$preemption" "$cgroup" "$nodes" "$cpus" "$tmp"
    local current
    current=$(running_mode || true)
    if [[ $current == "$mode" ]] && cmp -s "$tmp/slurm.conf" "$CONF" &&
        cmp -s "$tmp/gres.conf" "$ETC/gres.conf" && cmp -s "$tmp/cgroup.conf" "$ETC/cgroup.conf"; then
        rm -rf "$tmp"
        log "already running ($mode)"
        echo "export SLURM_CONF=$CONF" >&3
        return 0
    fi
    if any_daemon_alive; then
        log "restarting (was: ${current:-partly running}, wanted: $mode)"
        do_stop
    fi
    rm -f "$ETC/slurmdbd.conf"
    mv -f "$tmp"/* "$ETC/"
    rm -rf "$tmp"
    echo "$mode" >"$MODE_FILE"
    echo "$nodes" >"$NODES_FILE"

    export SLURM_CONF=$CONF   # slurmdbd finds slurmdbd.conf beside it
    start_munged
    if [[ $mode == accounting ]]; then
        start_mariadbd
        start_slurmdbd
    fi
    start_slurmctld
    resolve_nodes
    if [[ $cgroup == yes ]]; then prepare_cgroups; fi
    for node in $(node_names); do start_slurmd "$node"; done
    wait_until_usable
    log "up ($mode, $preemption preemption, cgroup: $cgroup, $nodes node(s) of $cpus CPUs," \
        "Slurm $(slurm_version)) in $SECONDS s; logs in $LOG"
    echo "export SLURM_CONF=$CONF" >&3
}

do_status() {
    local mode
    if mode=$(running_mode) && SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q 'is UP'; then
        echo "up (mode: $mode, accounting: $([[ $mode == accounting ]] && echo yes || echo no))"
        echo "SLURM_CONF=$CONF"
        SLURM_CONF=$CONF sinfo || true
        return 0
    fi
    if any_daemon_alive; then
        echo "down (partly running: $(for d in $(all_daemons); do
            pid_of "$d" >/dev/null && printf '%s ' "$d"; done))"
    else
        echo "down"
    fi
    return 1
}

lock() {  # one start/stop at a time per cluster folder (e.g. parallel test workers)
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock 9
}

usage() {
    echo "usage: $0 start [--accounting] [--preemption signal|stock] [--cgroup] [--nodes N] [--cpus N]" \
        "| stop | status" \
        "| controller stop|start" >&2
    exit 2
}

preemption_lines() {  # preemption_lines signal|stock : slurm.conf lines of that preemption style
    if [[ $1 == signal ]]; then
        echo "# preempt_send_user_signal: a preempted job submitted with --signal=[B:]USR2@T gets that"
        echo "# USR2 at once (steps, or with B: the batch shell), then SIGTERM when the partition's"
        echo "# GraceTime is over and SIGKILL KillWait later."
        echo "SlurmctldParameters=preempt_send_user_signal"
    else
        echo "# Stock preemption (no preempt_send_user_signal, as on most clusters): a preempted job"
        echo "# gets no USR2, only SIGCONT+SIGTERM when the partition's GraceTime is over, SIGKILL"
        echo "# KillWait later."
    fi
}

node_port() { echo $(( SLURMD_PORT + 2 * ($1 - 1) )); }   # n1 on SLURMD_PORT, n2 two above...

cmd=${1:-}
shift || true
case $cmd in
    start)
        mode=plain preemption=signal cgroup=no nodes=1 cpus=$(nproc)
        while (( $# )); do
            case $1 in
                --accounting) mode=accounting ;;
                --cgroup) cgroup=yes ;;
                --preemption) preemption=${2:-}; shift ;;
                --preemption=*) preemption=${1#*=} ;;
                --nodes) nodes=${2:-}; shift ;;
                --nodes=*) nodes=${1#*=} ;;
                --cpus) cpus=${2:-}; shift ;;
                --cpus=*) cpus=${1#*=} ;;
                *) usage ;;
            esac
            shift
        done
        [[ $preemption == signal || $preemption == stock ]] || usage
        [[ $nodes =~ ^[1-9]$ && $cpus =~ ^[1-9][0-9]{0,3}$ ]] || usage
        exec 3>&1 1>&2   # stdout is only for the export line
        lock
        do_start "$mode" "$preemption" "$cgroup" "$nodes" "$cpus"
        ;;
    stop)
        (( $# == 0 )) || usage
        [[ -d $DIR ]] || exit 0
        exec 1>&2
        lock
        do_stop
        ;;
    status)
        (( $# == 0 )) || usage
        do_status
        ;;
    controller)   # stop or start slurmctld alone (jobs keep running; its state is kept)
        (( $# == 1 )) || usage
        exec 1>&2
        lock
        [[ -s $MODE_FILE ]] || die "the cluster is not running"
        case $1 in
            stop) pid=$(pid_of slurmctld) && kill_pid "$pid" slurmctld; rm -f "$RUN/slurmctld.pid" ;;
            start) pid_of slurmctld >/dev/null || { SLURM_CONF=$CONF start_slurmctld; wait_registered; } ;;
            *) usage ;;
        esac
        ;;
    *) usage ;;
esac
