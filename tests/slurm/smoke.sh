#!/usr/bin/env bash
# Smoke check of a running test cluster (starts nothing itself):
#
#   eval "$(tests/slurm/cluster.sh start [--accounting])"
#   tests/slurm/smoke.sh [--preempt[=SIGSPEC]]
#
# 1. sbatch --wrap 'sleep 2' and wait until it has COMPLETED (squeue -t all / scontrol);
# 2. a running job is requeued once with `scontrol requeue`: seconds until it is RUNNING again;
# 3. sacct --parsable2 -j <id> when accounting storage is on (else shows sacct's error);
# 4. with --preempt: an --exclusive job in `high` preempts an --exclusive job in `low` (submitted
#    with --signal=SIGSPEC, default USR2@60); prints when the low job saw which signal (bash traps
#    in its batch shell and in an srun step). Try --preempt=B:USR2@60 for the batch shell only.
# Prints the figures as `name: value` lines; exit 1 on any failure.

set -euo pipefail
: "${SLURM_CONF:?export SLURM_CONF first: eval \"\$(tests/slurm/cluster.sh start)\"}"

preempt=
for arg in "$@"; do
    case $arg in
        --preempt) preempt=USR2@60 ;;
        --preempt=*) preempt=${arg#--preempt=} ;;
        *) echo "usage: $0 [--preempt[=SIGSPEC]]" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d /tmp/jsc-smoke.XXXXXX)
JOBS=()
cleanup() { (( ${#JOBS[@]} )) && scancel "${JOBS[@]}" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
state() { squeue -h -t all -j "$1" -o '%T' 2>/dev/null | head -n1; }
fail() { echo "FAIL: $*" >&2; scontrol show job "${2:-0}" >&2 2>/dev/null || true; exit 1; }

wait_state() {  # wait_state JOB TIMEOUT STATE... : poll every 0.1 s until the job is in a STATE
    local job=$1 limit=$2 t0=$SECONDS s
    shift 2
    while :; do
        s=$(state "$job")
        for want in "$@"; do [[ $s == "$want" ]] && return 0; done
        case $s in
            FAILED|CANCELLED|NODE_FAIL|TIMEOUT|OUT_OF_MEMORY|BOOT_FAIL)
                fail "job $job ended $s while waiting for $*" "$job" ;;
        esac
        (( SECONDS - t0 < limit )) || fail "job $job still ${s:-unknown} after ${limit}s (wanted $*)" "$job"
        sleep 0.1
    done
}

submit() { local id; id=$(sbatch --parsable "$@"); id=${id%%;*}; JOBS+=("$id"); echo "$id"; }

# 1. a short job, submit -> RUNNING -> COMPLETED
t0=$(now)
job=$(submit --job-name=smoke-sleep --output="$WORK/sleep.out" --wrap 'sleep 2')
wait_state "$job" 30 RUNNING COMPLETED
echo "submit_to_running_s: $(since "$t0")"
wait_state "$job" 60 COMPLETED
echo "submit_to_completed_s: $(since "$t0") (job $job, sleep 2)"
echo "scontrol_final: $(scontrol show job "$job" | grep -o 'JobState=[A-Z_]* Reason=[^ ]*')"

# 2. requeue a running job once
# shellcheck disable=SC2016  # expanded by the job
rjob=$(submit --job-name=smoke-requeue --open-mode=append --output="$WORK/requeue.out" \
    --wrap 'echo "start restart=${SLURM_RESTART_COUNT:-0}"; sleep 300')
wait_state "$rjob" 30 RUNNING
sleep 1
t0=$(now)
scontrol requeue "$rjob"
# leave RUNNING first (COMPLETING/PENDING), then back to RUNNING
wait_state "$rjob" 30 COMPLETING PENDING REQUEUED
wait_state "$rjob" 300 RUNNING
echo "requeue_to_running_s: $(since "$t0") (job $rjob)"
echo "restarts: $(scontrol show job "$rjob" | grep -o 'Restarts=[0-9]*')"
for _ in $(seq 50); do [[ $(grep -c '^start' "$WORK/requeue.out" 2>/dev/null) == 2 ]] && break; sleep 0.1; done
echo "requeue_output: $(tr '\n' '|' <"$WORK/requeue.out")"
scancel "$rjob"

# 3. sacct
if out=$(sacct --parsable2 -X -o JobID,JobName,Partition,State,ExitCode -j "$job,$rjob" 2>&1); then
    sleep 0.5   # sacct lags squeue a little
    out=$(sacct --parsable2 -X -o JobID,JobName,Partition,State,ExitCode -j "$job,$rjob" 2>&1)
    echo "sacct: works"
    awk '{ print "  " $0 }' <<<"$out"
    grep -q "^$job|.*|COMPLETED|" <<<"$out" || fail "sacct does not show $job COMPLETED"
else
    echo "sacct: fails: $out"
fi

# 4. preemption of an --exclusive low job by an --exclusive high job
if [[ -n $preempt ]]; then
    sig="$WORK/signals.txt"
    # the batch shell and an srun step both log each signal with its arrival time
    cat >"$WORK/low.sh" <<'EOF'
#!/bin/bash
sig=$1
for s in USR2 TERM CONT; do
    trap "echo batch:$s \$(date +%s.%N) restart=${SLURM_RESTART_COUNT:-0} >>$sig" "$s"
done
srun --overlap bash -c 'for s in USR2 TERM CONT; do trap "echo step:$s \$(date +%s.%N) >>$0" $s; done
    while :; do sleep 0.1; done' "$sig" &
while :; do sleep 0.1; done
EOF
    low=$(submit --partition=low --exclusive --signal="$preempt" --job-name=smoke-low --open-mode=append \
        --output="$WORK/low.out" "$WORK/low.sh" "$sig")
    wait_state "$low" 30 RUNNING
    sleep 2
    : >"$sig"
    t0=$(now)
    high=$(submit --partition=high --exclusive --job-name=smoke-high --output=/dev/null --wrap 'sleep 5')
    wait_state "$high" 120 RUNNING
    echo "high_submit_to_running_s: $(since "$t0") (low $low --signal=$preempt, high $high)"
    echo "low_state_now: $(state "$low")"
    sleep 8
    echo "signals seen by low (who:signal, seconds after the high job's sbatch):"
    awk -v t0="$t0" '{ printf "  %s %.2f %s\n", $1, $2 - t0, $3 }' "$sig"
    echo "low_state_after_8s: $(state "$low")"
    scancel "$low" "$high"
fi
echo "smoke: OK"
