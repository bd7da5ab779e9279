#!/usr/bin/env bash
# Kubernetes objects benchmark (issue 4): back up N ConfigMaps of ~SIZE bytes
# from the Kubernetes API test double (crates/kube-double, a process serving
# the API over loopback; no real API server can run here) and restore them
# into a second, empty one. Reports objects per second, peak RSS and the
# repository growth of an unchanged second backup. See docs/benchmarks.md.
#
#   bench/kube.sh                 N=20000 SIZE=2048 RUNS=3
#   N=5000 RUNS=1 bench/kube.sh   a quick look
#
# No peer tool runs here: Velero needs a cluster with its server and
# plugins, and kubectl is not packaged for this Debian; the figures are
# Lifeboat's own, against the double, whose per-request cost is included.
set -euo pipefail
export LC_ALL=C
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
N=${N:-20000}
SIZE=${SIZE:-2048}
RUNS=${RUNS:-3}
NS=kubernaut-system
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench-password}

log() { printf '[kube-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ -x /usr/bin/time ]] || { log "installing time"; apt-get install -y -qq time > /dev/null; }
command -v bc > /dev/null || { log "installing bc"; apt-get install -y -qq bc > /dev/null; }

log "building lifeboat and kube-double (release)"
(cd "$ROOT" && cargo build --release -q -p lifeboat -p kube-double)
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cp "$ROOT/target/release/lifeboat" "$ROOT/target/release/kube-double" "$WORK/"
LB="$WORK/lifeboat"

start_double() { # name [seed]
    local name=$1 seed=${2:-0}
    "$WORK/kube-double" --kubeconfig-out "$WORK/$name.kubeconfig" \
        --seed-configmaps "$seed" --namespace "$NS" --size "$SIZE" > "$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do [[ -s $WORK/$name.kubeconfig ]] && return; sleep 0.1; done
    log "error: kube-double $name did not start"; cat "$WORK/$name.log" >&2; exit 1
}

# measure LABEL CMD...: wall seconds and peak RSS (MiB) into W and R.
measure() {
    local label=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$WORK/time" "$@" > "$WORK/out" 2> "$WORK/err" || {
        log "error: $label failed"; cat "$WORK/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    W=$(echo "$t1 - $t0" | bc -l)
    R=$(awk '/Maximum resident/ {printf "%d", $6/1024}' "$WORK/time")
    log "$label: $(printf %.2f "$W") s, peak RSS $R MiB, load $(cut -d' ' -f1 /proc/loadavg)"
}

log "starting the source double with $N ConfigMaps of $SIZE bytes in $NS"
start_double src "$N"
best_b=999999; best_r=999999; rss_b=0; rss_r=0
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/repo"
    "$LB" --repo "$WORK/repo" init -q > /dev/null
    measure "backup#$run" "$LB" --repo "$WORK/repo" -q --json backup kube -n "$NS" --kind configmaps \
        --kubeconfig "$WORK/src.kubeconfig"
    objs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kube"]["objects"])' "$WORK/out")
    [[ $objs -ge $N ]] || { log "error: backed up $objs objects, expected >= $N"; exit 1; }
    best_b=$(echo "if ($W < $best_b) $W else $best_b" | bc -l); (( R > rss_b )) && rss_b=$R
    start_double "dst$run"
    measure "restore#$run" "$LB" --repo "$WORK/repo" -q restore kube latest --kubeconfig "$WORK/dst$run.kubeconfig"
    best_r=$(echo "if ($W < $best_r) $W else $best_r" | bc -l); (( R > rss_r )) && rss_r=$R
    kill "${PIDS[-1]}"; unset 'PIDS[-1]'
done
size1=$(du -sb "$WORK/repo" | cut -f1)
measure "second backup" "$LB" --repo "$WORK/repo" -q backup kube -n "$NS" --kind configmaps \
    --kubeconfig "$WORK/src.kubeconfig"
size2=$(du -sb "$WORK/repo" | cut -f1)

mkdir -p "$RESULTS_DIR"
out="$RESULTS_DIR/kube-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "# Kubernetes objects: $N ConfigMaps of $SIZE bytes ($(date -u +%FT%TZ))"
    echo
    echo "- machine: $(nproc) CPUs; load at end $(cut -d' ' -f1-3 /proc/loadavg); lifeboat $(git -C "$ROOT" rev-parse --short HEAD)"
    echo "- best of $RUNS runs; peak RSS the largest"
    echo
    echo "| measurement | value |"
    echo "|---|---:|"
    printf '| backup, seconds | %.2f |\n' "$best_b"
    printf '| backup, objects/s | %.0f |\n' "$(echo "$N / $best_b" | bc -l)"
    echo "| backup, peak RSS MiB | $rss_b |"
    printf '| restore (server-side apply into an empty cluster), seconds | %.2f |\n' "$best_r"
    printf '| restore, objects/s | %.0f |\n' "$(echo "$N / $best_r" | bc -l)"
    echo "| restore, peak RSS MiB | $rss_r |"
    echo "| repository after first backup, bytes | $size1 |"
    echo "| added by an unchanged second backup, bytes | $((size2 - size1)) |"
} | tee "$out"
log "results: $out"
