#!/usr/bin/env bash
# Heartbeat lag against pg_stat_replication (issue 19): what Lifeboat's
# heartbeat age says a failover would lose, next to what PostgreSQL's own
# `replay_lag` says, under pgbench load. docs/benchmarks.md, "Heartbeat lag".
#
#   bench/heartbeat.sh
#   BENCH_HB_REPS=1 BENCH_HB_LOAD_SECONDS=20 bench/heartbeat.sh    a quick look
#
# What it does, all on 127.0.0.1, in a temporary directory removed on exit:
#   1. two PostgreSQL 15 clusters' directories owned by the `postgres` OS
#      user: a primary (initdb, started with pg_ctl) and an empty one that
#      `lifeboat region replicate --from us-east --to eu-west` seeds as its
#      streaming standby (slot, pg_basebackup, standby.signal, pg_ctl start);
#   2. one `lifeboat serve` for the primary's region (serve.region us-east,
#      heartbeat every 1 s), which writes the heartbeat and exports the
#      replication metrics;
#   3. per repetition (BENCH_HB_REPS):
#      - phase `load`: `pgbench -T LOAD -c 4` on the primary;
#      - phase `paused`: pgbench again, and 10 s into it the standby's replay
#        is paused (pg_wal_replay_pause) for BENCH_HB_PAUSE seconds, then
#        resumed; the samples after the resume are phase `resumed`;
#      sampling every second, each sample taken at one instant:
#        - the daemon's /metrics: lifeboat_replication_heartbeat_age_seconds,
#          lifeboat_replication_lag_seconds, lifeboat_replication_lag_bytes
#          {region="eu-west"} (the daemon refreshes them every 5 s: its
#          WATCH_INTERVAL);
#        - on the primary: pg_stat_replication's replay_lag (seconds; NULL
#          shown as `null`) and pg_current_wal_lsn() - replay_lsn (bytes);
#        - on the standby, read directly: now() - the newest heartbeat it
#          replayed (what the daemon's metric would say if it were fresh)
#          and now() - pg_last_xact_replay_timestamp().
#   4. report() (Python, below) prints median / p95 / max per phase
#      of each column and of the differences; the raw samples stay in
#      BENCH_RESULTS.
# `uptime`'s load averages are recorded with every sample.
#
# Environment (all optional):
#   BENCH_HB_REPS          repetitions                                 [3]
#   BENCH_HB_LOAD_SECONDS  pgbench duration of the `load` phase         [60]
#   BENCH_HB_PAUSE         seconds replay stays paused                  [20]
#   BENCH_HB_CLIENTS       pgbench clients                              [4]
#   BENCH_HB_SCALE         pgbench -i scale                             [10]
#   BENCH_PG_BIN           PostgreSQL binaries        [/usr/lib/postgresql/15/bin]
#   BENCH_RESULTS          where the result files go                    [bench/results]
#   LIFEBOAT_BIN           lifeboat binary     [target/release/lifeboat, built]
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
REPS=${BENCH_HB_REPS:-3}
LOAD_S=${BENCH_HB_LOAD_SECONDS:-60}
PAUSE_S=${BENCH_HB_PAUSE:-20}
CLIENTS=${BENCH_HB_CLIENTS:-4}
SCALE=${BENCH_HB_SCALE:-10}
PGBIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
if [[ -z ${LIFEBOAT_BIN:-} ]]; then
  cargo build --release -p lifeboat --manifest-path "$ROOT/Cargo.toml" >&2
  LIFEBOAT_BIN=$ROOT/target/release/lifeboat
fi
for t in initdb pg_ctl pgbench psql pg_basebackup; do
  [[ -x $PGBIN/$t ]] || { echo "no $PGBIN/$t: install postgresql-15 (scripts/test.sh does)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

# Secrets for this throwaway setup only, passed through the environment.
export PGPASSWORD=bench-hb-superuser LIFEBOAT_PASSWORD=bench-hb-repository
export REGION_PG_PASSWORD=$PGPASSWORD REGION_REPL_PASSWORD=bench-hb-replication
USER_=bench

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/heartbeat-$STAMP.tsv
LOG=$RESULTS_DIR/heartbeat-$STAMP.log
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }
load() { uptime | sed 's/.*load average: //; s/,//g'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

W=$(mktemp -d /var/tmp/lb-heartbeat.XXXXXX)
DAEMON_PID=''
SAMPLER_PID=''
PGBENCH_PID=''
as_pg() { (cd "$W" && runuser -u postgres -- "$@"); }
cleanup() {
  set +e
  for p in "$SAMPLER_PID" "$PGBENCH_PID" "$DAEMON_PID"; do
    [[ -n $p ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  for d in "$W/standby/data" "$W/primary/data"; do
    [[ -f $d/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

P1=$(free_port)
P2=$(free_port)
while [[ $P2 == "$P1" ]]; do P2=$(free_port); done
MPORT=$(free_port)
chown postgres:postgres "$W"; chmod 700 "$W"
mkdir -p "$W/primary" "$W/standby/data"
chown postgres:postgres "$W/primary" "$W/standby" "$W/standby/data"
chmod 700 "$W/standby/data"
echo "$PGPASSWORD" > "$W/pw"; chown postgres "$W/pw"; chmod 600 "$W/pw"

log "primary on port $P1, standby on $P2, daemon on $MPORT, in $W"
as_pg "$PGBIN/initdb" -D "$W/primary/data" -U "$USER_" --pwfile="$W/pw" -A scram-sha-256 \
  -E UTF8 --locale=C >/dev/null
rm -f "$W/pw"
cat >> "$W/primary/data/postgresql.conf" <<EOF
port = $P1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$W/primary'
max_connections = 40
timezone = 'UTC'
EOF
as_pg "$PGBIN/pg_ctl" -D "$W/primary/data" -l "$W/primary/log" -w start >/dev/null

"$LIFEBOAT_BIN" --repo "$W/repo" init -q >/dev/null
CFG=$W/regions.yaml
cat > "$CFG" <<EOF
repository:
  url: $W/repo
  password: {env: LIFEBOAT_PASSWORD}
objectives:
  - {scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}
regions:
  us-east:
    postgres:
      url: postgresql://$USER_@127.0.0.1:$P1/postgres
      password: {env: REGION_PG_PASSWORD}
      manager: postgres
      role: primary
  eu-west:
    postgres:
      url: postgresql://$USER_@127.0.0.1:$P2/postgres
      password: {env: REGION_PG_PASSWORD}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: $W/standby/data
      control: {pg_ctl: {bin_dir: $PGBIN}}
replication:
  user: lifeboat_replication
  password: {env: REGION_REPL_PASSWORD}
  heartbeat: {interval: 1s}
serve:
  region: us-east
  lease: 5s
EOF

log "seeding the standby: lifeboat region replicate --from us-east --to eu-west"
t0=$(date +%s.%N)
"$LIFEBOAT_BIN" --config "$CFG" -q region replicate --from us-east --to eu-west >>"$LOG" 2>&1 \
  || { log "region replicate failed (see $LOG)"; exit 1; }
log "replicate took $(echo "$(date +%s.%N) - $t0" | bc) s"

"$LIFEBOAT_BIN" --config "$CFG" serve --listen "127.0.0.1:$MPORT" >"$W/serve.out" 2>"$W/serve.log" &
DAEMON_PID=$!
SERIES_AGE='lifeboat_replication_heartbeat_age_seconds{region="eu-west"}'
SERIES_LAG='lifeboat_replication_lag_seconds{region="eu-west"}'
SERIES_BYTES='lifeboat_replication_lag_bytes{region="eu-west"}'
scrape() { curl -fsS --max-time 2 "http://127.0.0.1:$MPORT/metrics" 2>/dev/null || true; }
value() { awk -v s="$1" 'index($0, s " ") == 1 { print $2; exit }'; }
for _ in $(seq 1 120); do
  v=$(scrape | value "$SERIES_AGE")
  [[ -n $v && $v != NaN ]] && break
  sleep 1
done
[[ -n ${v:-} && $v != NaN ]] || { log "the daemon exports no heartbeat age for eu-west"; cat "$W/serve.log" >>"$LOG"; exit 1; }
log "daemon up, heartbeat age $v s"

psql_p() { "$PGBIN/psql" -h 127.0.0.1 -p "$P1" -U "$USER_" -qAtX -v ON_ERROR_STOP=1 "$@"; }
psql_s() { "$PGBIN/psql" -h 127.0.0.1 -p "$P2" -U "$USER_" -qAtX -v ON_ERROR_STOP=1 "$@"; }
psql_p -d postgres -c "CREATE DATABASE pgbench"
log "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -h 127.0.0.1 -p "$P1" -U "$USER_" -i -q -s "$SCALE" pgbench >>"$LOG" 2>&1

# median / p95 / max (nearest rank) per phase of every column, how many
# samples had no value (NULL replay_lag, a missing series), and per sample
# the differences heartbeat age - replay_lag.
report() {
  python3 - "$1" <<'EOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x
def stats(xs):
    xs = sorted(xs)
    if not xs:
        return '-'
    q = lambda p: xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))]
    return f"{q(0.5):.3g} / {q(0.95):.3g} / {xs[-1]:.3g}"
cols = [
    ('metric_hb_age_s', 'daemon heartbeat age s'),
    ('metric_lag_s', 'daemon lag_seconds'),
    ('metric_lag_bytes', 'daemon lag_bytes'),
    ('replay_lag_s', 'pg_stat_replication replay_lag s'),
    ('primary_gap_bytes', 'current_lsn - replay_lsn bytes'),
    ('standby_hb_age_s', 'heartbeat age read on the standby s'),
    ('standby_replay_ts_age_s', 'now - last replayed commit s'),
]
diffs = [
    ('metric_hb_age_s', 'replay_lag_s', 'daemon heartbeat age - replay_lag s'),
    ('standby_hb_age_s', 'replay_lag_s', 'standby heartbeat age - replay_lag s'),
    ('metric_hb_age_s', 'standby_hb_age_s', 'daemon metric - standby heartbeat age s'),
]
phases = []
for r in rows:
    if r['phase'] not in phases:
        phases.append(r['phase'])
print('median / p95 / max per phase (n = samples; "no value" = NULL or absent)')
for ph in phases:
    rs = [r for r in rows if r['phase'] == ph]
    loads = [r['load_1_5_15'].split()[0] for r in rs]
    print(f"\n{ph}: n={len(rs)}, 1-min load {min(loads)}-{max(loads)}")
    for c, label in cols:
        vals = [num(r[c]) for r in rs]
        xs = [v for v in vals if v is not None]
        print(f"  {label:42s} {stats(xs):>28s}   no value: {len(vals) - len(xs)}")
    for a, b, label in diffs:
        xs = [num(r[a]) - num(r[b]) for r in rs if num(r[a]) is not None and num(r[b]) is not None]
        print(f"  {label:42s} {stats(xs):>28s}   pairs: {len(xs)}")
EOF
}

# One sample: phase, rep, time, the daemon's three series, the primary's
# view, the standby's own view, the load.
printf 'phase\trep\tt\tmetric_hb_age_s\tmetric_lag_s\tmetric_lag_bytes\treplay_lag_s\tprimary_gap_bytes\tstandby_hb_age_s\tstandby_replay_ts_age_s\treplay_paused\tload_1_5_15\n' >"$OUT"
PHASE_FILE=$W/phase
sample() {
  local phase rep m age lag bytes prim stby
  read -r phase rep <"$PHASE_FILE"
  m=$(scrape)
  age=$(value "$SERIES_AGE" <<<"$m"); lag=$(value "$SERIES_LAG" <<<"$m"); bytes=$(value "$SERIES_BYTES" <<<"$m")
  prim=$(psql_p -d postgres -F $'\t' -c "SELECT coalesce(extract(epoch FROM replay_lag)::text, 'null'), pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication WHERE application_name = 'eu-west'" 2>/dev/null || true)
  stby=$(psql_s -d lifeboat -F $'\t' -c "SELECT extract(epoch FROM now() - max(at)), coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text, 'null'), pg_is_wal_replay_paused() FROM lifeboat.heartbeat" 2>/dev/null || true)
  [[ -n $prim ]] || prim=$'none\tnone'
  [[ -n $stby ]] || stby=$'none\tnone\tnone'
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$rep" "$(date +%s.%N)" \
    "${age:-none}" "${lag:-none}" "${bytes:-none}" "$prim" "$stby" "$(load)" >>"$OUT"
}
sampler() {
  local next
  next=$(date +%s)
  while :; do
    next=$((next + 1))
    sample
    sleep "$(echo "$next - $(date +%s.%N)" | bc | sed 's/^-.*/0/')"
  done
}
set_phase() { echo "$1 $2" >"$PHASE_FILE"; }

set_phase idle 0
sampler &
SAMPLER_PID=$!
sleep 5
pgbench_run() {
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$P1" -U "$USER_" -T "$1" -c "$CLIENTS" -j 2 -n pgbench >>"$LOG" 2>&1 &
  PGBENCH_PID=$!
}
for r in $(seq 1 "$REPS"); do
  log "rep $r: load, pgbench -T $LOAD_S -c $CLIENTS (load $(load))"
  set_phase load "$r"
  pgbench_run "$LOAD_S"
  wait "$PGBENCH_PID"; PGBENCH_PID=''
  set_phase settle "$r"; sleep 5
  log "rep $r: replay paused for $PAUSE_S s under pgbench (load $(load))"
  set_phase paused_before "$r"
  pgbench_run $((PAUSE_S + 25))
  sleep 10
  psql_s -d postgres -c "SELECT pg_wal_replay_pause()" >/dev/null
  set_phase paused "$r"
  sleep "$PAUSE_S"
  psql_s -d postgres -c "SELECT pg_wal_replay_resume()" >/dev/null
  set_phase resumed "$r"
  wait "$PGBENCH_PID"; PGBENCH_PID=''
  set_phase settle "$r"; sleep 10
done
kill "$SAMPLER_PID"; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=''
grep -h "tps = \|latency average" "$LOG" | sed 's/^/  pgbench: /' >&2 || true
cp "$W/serve.log" "$RESULTS_DIR/heartbeat-$STAMP.serve.log"
report "$OUT" | tee -a "$LOG"
log "samples: $OUT"
