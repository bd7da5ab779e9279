#!/usr/bin/env bash
# PostgreSQL benchmark for issue 3 ("Performance"): lifeboat vs pg_dump/pg_restore vs
# restic, same generated Kubernaut-like database, same run. See docs/benchmarks-postgres.md.
#
#   bench/postgres.sh
#
# It starts (or reuses) a PostgreSQL 15 cluster owned by the `postgres` OS user,
# generates the fixture once (bench/pgfixture), then measures, one run each:
#   1. pg_dump -Fc -Z0 > /dev/null
#   2. pg_dump -Fc > file (time, size)
#   3. lifeboat backup postgres (wall, peak RSS) into a fresh repository
#   4. pg_dump -Fc -Z0 | restic backup --stdin into a fresh repository
#   5. BENCH_HOURS x { 1 % churn; lifeboat backup; restic backup } with du -sb growth
#   6. restores into fresh databases: pg_restore -j2 from a local -Z0 file of the final
#      state, lifeboat restore --jobs 2, lifeboat restore (single stream),
#      restic dump | pg_restore
#   7. BENCH_PAIRS paired rounds on the final state, each pair back to back:
#      pg_dump -Fc -Z0 > /dev/null then lifeboat's first backup into a fresh
#      repository; pg_restore -j2 from the file and lifeboat restore --jobs 2,
#      taking turns at going first (and restore --jobs 2 --whole-tables, the
#      split off), with lifeboat's own staging_seconds and
#      restore_seconds from --json (the per-pair ratios are what the report's
#      targets table uses: a pair shares the machine's state, single runs
#      further apart do not)
# Every line records `uptime`'s load averages taken just before the measurement.
#
# Environment (all optional):
#   BENCH_SIZE        fixture size                                  [1.6G]
#   BENCH_HOURS       simulated hours of churn                      [10]
#   BENCH_CHURN       churn fraction per hour                       [0.01]
#   BENCH_PAIRS       paired rounds (step 7)                         [3]
#   BENCH_PG_DIR      cluster + scratch directory (kept)            [/var/tmp/lb-pgbench]
#   BENCH_PG_PORT     port                                          [55432]
#   BENCH_PG_BIN      PostgreSQL binaries                           [/usr/lib/postgresql/15/bin]
#   BENCH_DB          database name (generated when missing)        [kubernaut]
#   BENCH_RESULTS     where the result file goes                    [bench/results]
#   LIFEBOAT_BIN      lifeboat binary                               [target/release/lifeboat, built]
#   PGFIXTURE_BIN     fixture helper                                [built from bench/pgfixture]
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SIZE=${BENCH_SIZE:-1.6G}
HOURS=${BENCH_HOURS:-10}
CHURN=${BENCH_CHURN:-0.01}
PAIRS=${BENCH_PAIRS:-3}
D=${BENCH_PG_DIR:-/var/tmp/lb-pgbench}
PORT=${BENCH_PG_PORT:-55432}
PGBIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
export PGPASSWORD=${PGPASSWORD:-benchpw}
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench-password}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-bench-password}
USER_=bench
DB=${BENCH_DB:-kubernaut}
url() { echo "postgresql://$USER_@127.0.0.1:$PORT/$1"; }
PGARGS=(-h 127.0.0.1 -p "$PORT" -U "$USER_")

if [[ -z ${LIFEBOAT_BIN:-} ]]; then
  cargo build --release -p lifeboat --manifest-path "$ROOT/Cargo.toml" >&2
  LIFEBOAT_BIN=$ROOT/target/release/lifeboat
fi
if [[ -z ${PGFIXTURE_BIN:-} ]]; then
  CARGO_TARGET_DIR=$ROOT/target/bench-pgfixture \
    cargo build --release --manifest-path "$BENCH_DIR/pgfixture/Cargo.toml" >&2
  PGFIXTURE_BIN=$ROOT/target/bench-pgfixture/release/lifeboat-bench-pgfixture
fi

LB_COMM=$(basename "$LIFEBOAT_BIN" | cut -c1-15)
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/postgres-$STAMP.tsv
LOG=$RESULTS_DIR/postgres-$STAMP.log
printf 'step\twall_s\tlifeboat_rss_kib\ttree_rss_kib\tbytes\tload_1_5_15\n' > "$OUT"
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }
load() { uptime | sed 's/.*load average: //; s/,//g'; }

# ---- cluster -------------------------------------------------------------------
if ! "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
  if [[ ! -d $D/data ]]; then
    mkdir -p "$D"; chown postgres:postgres "$D"; chmod 700 "$D"
    echo "$PGPASSWORD" > "$D/pw"; chown postgres "$D/pw"
    (cd "$D" && runuser -u postgres -- "$PGBIN/initdb" -D "$D/data" -U "$USER_" \
       --pwfile="$D/pw" -A scram-sha-256 >/dev/null)
    cat >> "$D/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$D'
shared_buffers = 512MB
maintenance_work_mem = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
max_connections = 40
timezone = 'UTC'
EOF
  fi
  (cd "$D" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null)
fi
psql_() { "$PGBIN/psql" "${PGARGS[@]}" -v ON_ERROR_STOP=1 -qAtX "$@"; }
if [[ -z $(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
  psql_ -d postgres -c "CREATE DATABASE $DB"
  log "generating $SIZE"
  "$PGFIXTURE_BIN" gen "$(url "$DB")" "$SIZE" | tee -a "$LOG" >&2
  psql_ -d "$DB" -c "VACUUM ANALYZE"
fi
log "database size: $(psql_ -d "$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")"

# ---- measuring -----------------------------------------------------------------
# measure STEP BYTES_FILE -- CMD...: runs CMD under /usr/bin/time -v, samples the
# lifeboat process's own VmHWM (its children, pg_dump/pg_restore, are not counted
# there; tree_rss is the largest single process of the tree as time(1) reports it).
measure() {
  local step=$1; shift
  local l; l=$(load)
  local tf; tf=$(mktemp)
  local hwm=0 start end
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$tf" "$@" &
  local tpid=$!
  while kill -0 "$tpid" 2>/dev/null; do
    local p
    local p kids
    kids=$(pgrep -P "$tpid" 2>/dev/null || true)
    for p in $kids $(for k in $kids; do pgrep -P "$k" 2>/dev/null || true; done); do
      [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$LB_COMM" ]] || continue
      local h; h=$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || true)
      [[ -n $h && $h -gt $hwm ]] && hwm=$h
    done
    sleep 0.2
  done
  wait "$tpid" || { log "FAILED: $step"; cat "$tf" >> "$LOG"; rm -f "$tf"; return 1; }
  end=$(date +%s.%N)
  local tree; tree=$(awk -F': ' '/Maximum resident/{print $2}' "$tf")
  rm -f "$tf"
  LAST_WALL=$(echo "$end - $start" | bc)
  LAST_HWM=$hwm
  printf '%s\t%.1f\t%s\t%s\t%s\t%s\n' "$step" "$LAST_WALL" "$hwm" "$tree" "${BYTES:-}" "$l" >> "$OUT"
  log "$step: ${LAST_WALL}s lifeboat_hwm=${hwm}KiB tree_rss=${tree}KiB bytes=${BYTES:-} load=$l"
}
# rows added without a process to time
record() { printf '%s\t\t\t\t%s\t%s\n' "$1" "$2" "$(load)" >> "$OUT"; log "$1: $2"; }

S=$D/scratch; rm -rf "$S"; mkdir -p "$S"; chmod 777 "$S"
LB=$S/lifeboat-repo; RR=$S/restic-repo
"$LIFEBOAT_BIN" --repo "$LB" init >/dev/null
restic -q -r "$RR" init >/dev/null
du_() { du -sb "$1" | cut -f1; }

BYTES='' measure pg_dump_Z0_devnull bash -c "'$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -Z0 -d $DB > /dev/null"
measure pg_dump_Fc_file bash -c "'$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -d $DB > '$S/db.Fc.dump'"
record pg_dump_Fc_file_size "$(stat -c %s "$S/db.Fc.dump")"
rm -f "$S/db.Fc.dump"

measure lifeboat_backup_first bash -c "'$LIFEBOAT_BIN' --repo '$LB' --json backup postgres --db '$(url "$DB")' > '$S/lb-first.json'"
record lifeboat_repo_after_first "$(du_ "$LB")"
measure restic_backup_first bash -c "'$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -Z0 -d $DB | restic -q -r '$RR' backup --stdin --stdin-filename $DB.dump"
record restic_repo_after_first "$(du_ "$RR")"

for h in $(seq 1 "$HOURS"); do
  measure "churn_h$h" "$PGFIXTURE_BIN" churn "$(url "$DB")" "$CHURN"
  b=$(du_ "$LB")
  measure "lifeboat_backup_h$h" bash -c "'$LIFEBOAT_BIN' --repo '$LB' --json backup postgres --db '$(url "$DB")' > '$S/lb-h$h.json'"
  record "lifeboat_added_h$h" "$(( $(du_ "$LB") - b ))"
  b=$(du_ "$RR")
  measure "restic_backup_h$h" bash -c "'$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -Z0 -d $DB | restic -q -r '$RR' backup --stdin --stdin-filename $DB.dump"
  record "restic_added_h$h" "$(( $(du_ "$RR") - b ))"
done

# ---- restores ------------------------------------------------------------------
fresh() { psql_ -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }
drop() { psql_ -d postgres -c "DROP DATABASE IF EXISTS $1"; }
measure pg_dump_Z0_file_final bash -c "'$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -Z0 -d $DB > '$S/db.Z0.dump'"
fresh r_pg
measure pg_restore_j2_file "$PGBIN/pg_restore" "${PGARGS[@]}" -j2 -d r_pg "$S/db.Z0.dump"
drop r_pg
drop r_lb2
measure lifeboat_restore_jobs2 "$LIFEBOAT_BIN" --repo "$LB" restore postgres latest --target "$(url r_lb2)" --jobs 2 --staging-dir "$S"
drop r_lb2
drop r_lb1
measure lifeboat_restore_single "$LIFEBOAT_BIN" --repo "$LB" restore postgres latest --target "$(url r_lb1)"
drop r_lb1
fresh r_restic
measure restic_dump_pg_restore bash -c "restic -q -r '$RR' dump latest $DB.dump | '$PGBIN/pg_restore' -h 127.0.0.1 -p $PORT -U $USER_ -d r_restic"
drop r_restic

# ---- paired rounds -------------------------------------------------------------
pair_pg_restore() {
  fresh r_pg
  measure "pair$1_pg_restore_j2_file" "$PGBIN/pg_restore" "${PGARGS[@]}" -j2 -d r_pg "$S/db.Z0.dump"
  drop r_pg
}
# Lifeboat's own account (--json): staging_seconds (before the writers are
# stopped) and restore_seconds (pg_restore, writers stopped).
pair_lifeboat_restore() {
  drop r_lb2
  measure "pair$1_lifeboat_restore_jobs2" bash -c "'$LIFEBOAT_BIN' --repo '$LB' --json restore postgres latest --target '$(url r_lb2)' --jobs 2 --staging-dir '$S' > '$S/lb-restore-p$1.json'"
  record "pair$1_lifeboat_staging_s" "$(json_field "$S/lb-restore-p$1.json" staging_seconds)"
  record "pair$1_lifeboat_pg_restore_s" "$(json_field "$S/lb-restore-p$1.json" restore_seconds)"
  drop r_lb2
}
# The same with --whole-tables: one pg_restore job per table (the split off).
pair_lifeboat_whole() {
  drop r_lb2
  measure "pair$1_lifeboat_restore_jobs2_whole" "$LIFEBOAT_BIN" --repo "$LB" restore postgres latest --target "$(url r_lb2)" --jobs 2 --whole-tables --staging-dir "$S"
  drop r_lb2
}
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
for p in $(seq 1 "$PAIRS"); do
  measure "pair${p}_pg_dump_Z0_devnull" bash -c "'$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -Z0 -d $DB > /dev/null"
  rm -rf "$S/lb-pair"; "$LIFEBOAT_BIN" --repo "$S/lb-pair" init >/dev/null
  measure "pair${p}_lifeboat_backup" bash -c "'$LIFEBOAT_BIN' --repo '$S/lb-pair' --json backup postgres --db '$(url "$DB")' > /dev/null"
  # The restores alternate which goes first (odd pairs: pg_restore first), so
  # whatever the one before leaves behind (dirty pages, a dropped database's
  # files) weighs on both alike.
  if (( p % 2 )); then pair_pg_restore "$p"; pair_lifeboat_restore "$p"; pair_lifeboat_whole "$p"
  else pair_lifeboat_whole "$p"; pair_lifeboat_restore "$p"; pair_pg_restore "$p"; fi
done
rm -rf "$S/lb-pair"; rm -f "$S/db.Z0.dump"
record lifeboat_repo_final "$(du_ "$LB")"
record restic_repo_final "$(du_ "$RR")"
log "results: $OUT"
