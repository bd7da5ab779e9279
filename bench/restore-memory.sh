#!/usr/bin/env bash
# Restore memory benchmark (issue 16, "Restore memory is bounded"): peak RSS of
# every restore mode on databases of different compressibility. See
# docs/benchmarks-postgres.md, "Restore memory".
#
#   bench/restore-memory.sh
#
# Generates (once) four databases with bench/pgfixture: `mem_r8` and `mem_r50`
# (dump streams that zstd shrinks ~8× and ~50×), `mem_r1` (random printable
# text, ~1.2×, as incompressible as a COPY text stream gets) and `mem_small`
# (many small tables). Backs each up once, then restores it into a fresh
# database in each mode, for every binary in LIFEBOAT_BINS:
#   stream   restore postgres latest                        (streamed, default jobs)
#   jobs2    restore postgres latest --jobs 2               (staged + split)
#   whole    restore postgres latest --jobs 2 --whole-tables
#   rstream  restore stream latest | pg_restore             (the archive to a pipe)
# and records the lifeboat process's own peak RSS (VmHWM sampled every 0.2 s;
# its pg_restore children are not counted) with the wall time.
#
# The repositories are opened with a key file by default (BENCH_SECRET=keyfile):
# a passphrase's Argon2id unlock takes 64 MiB for a moment, and its ~81 MiB
# high-water mark would hide everything a restore holds below it. With
# BENCH_SECRET=password the figures are what a passphrase user sees.
#
# Environment (all optional):
#   BENCH_MEM_SIZE    rows per ratio database                       [600M]
#   BENCH_SMALL       tables and rows each for mem_small            ["2000 200"]
#   BENCH_PG_DIR      cluster + scratch directory (kept)            [/var/tmp/lb-membench]
#   BENCH_PG_PORT     port                                          [55439]
#   BENCH_PG_BIN      PostgreSQL binaries                           [/usr/lib/postgresql/15/bin]
#   BENCH_RESULTS     where the result file goes                    [bench/results]
#   BENCH_DBS         which databases                               ["mem_r8 mem_r50 mem_r1 mem_small"]
#   BENCH_MODES       which restore modes                           ["stream jobs2 whole rstream"]
#   BENCH_SECRET      keyfile or password                           [keyfile]
#   LIFEBOAT_BINS     label=path pairs                              [new=target/release/lifeboat]
#   PGFIXTURE_BIN     fixture helper                                [built from bench/pgfixture]
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SIZE=${BENCH_MEM_SIZE:-600M}
read -r SMALL_TABLES SMALL_ROWS <<< "${BENCH_SMALL:-2000 200}"
D=${BENCH_PG_DIR:-/var/tmp/lb-membench}
PORT=${BENCH_PG_PORT:-55439}
PGBIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
DBS=${BENCH_DBS:-mem_r8 mem_r50 mem_r1 mem_small}
MODES=${BENCH_MODES:-stream jobs2 whole rstream}
export PGPASSWORD=${PGPASSWORD:-benchpw}
SECRET=${BENCH_SECRET:-keyfile}
USER_=bench
url() { echo "postgresql://$USER_@127.0.0.1:$PORT/$1"; }
PGARGS=(-h 127.0.0.1 -p "$PORT" -U "$USER_")

if [[ -z ${LIFEBOAT_BINS:-} ]]; then
  cargo build --release -p lifeboat --manifest-path "$ROOT/Cargo.toml" >&2
  LIFEBOAT_BINS="new=$ROOT/target/release/lifeboat"
fi
if [[ -z ${PGFIXTURE_BIN:-} ]]; then
  CARGO_TARGET_DIR=$ROOT/target/bench-pgfixture \
    cargo build --release --manifest-path "$BENCH_DIR/pgfixture/Cargo.toml" >&2
  PGFIXTURE_BIN=$ROOT/target/bench-pgfixture/release/lifeboat-bench-pgfixture
fi

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/restore-memory-$STAMP.tsv
LOG=$RESULTS_DIR/restore-memory-$STAMP.log
printf 'secret\tbinary\tdb\tmode\twall_s\tlifeboat_hwm_kib\tdump_bytes\tstored_bytes\tload_1_5_15\n' > "$OUT"
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }
load() { uptime | sed 's/.*load average: //; s/,//g'; }

# ---- cluster (the same settings as bench/postgres.sh) --------------------------
if ! "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
  if [[ ! -d $D/data ]]; then
    mkdir -p "$D"; chown postgres:postgres "$D"; chmod 700 "$D"
    echo "$PGPASSWORD" > "$D/pw"; chown postgres "$D/pw"
    (cd "$D" && runuser -u postgres -- "$PGBIN/initdb" -D "$D/data" -U "$USER_" \
       --pwfile="$D/pw" -A scram-sha-256 >/dev/null)
    cat >> "$D/data/postgresql.conf" <<CONF
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
max_locks_per_transaction = 256
timezone = 'UTC'
CONF
  fi
  (cd "$D" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null)
fi
psql_() { "$PGBIN/psql" "${PGARGS[@]}" -v ON_ERROR_STOP=1 -qAtX "$@"; }
S=$D/scratch; mkdir -p "$S"; chmod 777 "$S"
if [[ $SECRET == keyfile ]]; then
  KEY=$S/bench.key
  [[ -f $KEY ]] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$KEY"; chmod 600 "$KEY"; }
  unset LIFEBOAT_PASSWORD
  export LIFEBOAT_KEY_FILE=$KEY
else
  export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench-password}
fi

for db in $DBS; do
  if [[ -z $(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    psql_ -d postgres -c "CREATE DATABASE $db"
    log "generating $db"
    case $db in
      mem_r*) "$PGFIXTURE_BIN" gen-ratio "$(url "$db")" "$SIZE" "${db#mem_r}" | tee -a "$LOG" >&2 ;;
      mem_small) "$PGFIXTURE_BIN" gen-small "$(url "$db")" "$SMALL_TABLES" "$SMALL_ROWS" | tee -a "$LOG" >&2 ;;
    esac
    psql_ -d "$db" -c "VACUUM ANALYZE"
  fi
  log "$db: $(psql_ -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")"
done

# measure BIN DB MODE -- CMD...: wall time and the lifeboat process's VmHWM.
measure() {
  local bin=$1 db=$2 mode=$3; shift 3
  local l; l=$(load)
  local hwm=0 start end comm
  comm=$(basename "$LB_BIN" | cut -c1-15)
  start=$(date +%s.%N)
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local p kids
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    for p in $pid $kids $(for k in $kids; do pgrep -P "$k" 2>/dev/null || true; done); do
      [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$comm" ]] || continue
      local h; h=$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || true)
      [[ -n $h && $h -gt $hwm ]] && hwm=$h
    done
    sleep 0.2
  done
  wait "$pid" || { log "FAILED: $bin $db $mode"; return 1; }
  end=$(date +%s.%N)
  local wall; wall=$(echo "$end - $start" | bc)
  printf '%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\n' "$SECRET" "$bin" "$db" "$mode" "$wall" "$hwm" "${DUMP_BYTES:-}" "${STORED_BYTES:-}" "$l" >> "$OUT"
  log "$bin $db $mode: ${wall}s lifeboat_hwm=${hwm}KiB load=$l"
}
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$1" "$2"; }
drop() { psql_ -d postgres -c "DROP DATABASE IF EXISTS $1"; }

for db in $DBS; do
  LB=$S/repo-$db-$SECRET
  FIRST=${LIFEBOAT_BINS%% *}; LB_BIN=${FIRST#*=}
  if [[ ! -d $LB ]]; then
    "$LB_BIN" --repo "$LB" init >/dev/null
    "$LB_BIN" --repo "$LB" --json backup postgres --db "$(url "$db")" > "$S/backup-$db-$SECRET.json"
  fi
  DUMP_BYTES=$(json_field "$S/backup-$db-$SECRET.json" "['stats']['bytes_read']")
  STORED_BYTES=$(json_field "$S/backup-$db-$SECRET.json" "['stats']['bytes_stored']")
  log "$db: dump $DUMP_BYTES bytes, stored $STORED_BYTES bytes"
  for pair in $LIFEBOAT_BINS; do
    label=${pair%%=*}; LB_BIN=${pair#*=}
    for mode in $MODES; do
      drop r_mem
      case $mode in
        stream) measure "$label" "$db" "$mode" "$LB_BIN" --repo "$LB" restore postgres latest --target "$(url r_mem)" ;;
        jobs2) measure "$label" "$db" "$mode" "$LB_BIN" --repo "$LB" restore postgres latest --target "$(url r_mem)" --jobs 2 --staging-dir "$S" ;;
        whole) measure "$label" "$db" "$mode" "$LB_BIN" --repo "$LB" restore postgres latest --target "$(url r_mem)" --jobs 2 --whole-tables --staging-dir "$S" ;;
        rstream)
          psql_ -d postgres -c "CREATE DATABASE r_mem"
          measure "$label" "$db" "$mode" bash -c "set -o pipefail; '$LB_BIN' --repo '$LB' restore stream latest | '$PGBIN/pg_restore' -h 127.0.0.1 -p $PORT -U $USER_ -d r_mem" ;;
      esac
      drop r_mem
    done
  done
done
log "results: $OUT"
