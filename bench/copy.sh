#!/usr/bin/env bash
# `lifeboat copy` against `restic copy` (issue 19), on the benchmark
# database's repository. docs/benchmarks.md, "Copy (issue 19)";
# docs/regions/copy.md describes the copy.
#
#   bench/copy.sh                              512 MiB fixture, local and moto S3, 3 reps
#   BENCH_COPY_DATA=stream BENCH_SIZE=256M bench/copy.sh    the synthetic stream instead
#   BENCH_REPS=1 BENCH_DB=copy128 BENCH_SIZE=128M BENCH_COPY_DESTS=local bench/copy.sh   a quick look
#
# The sources, made once per run, as bench/postgres.sh makes its repositories:
#   - data `postgres` (default): the generated Kubernaut-like database
#     (bench/pgfixture: ~55 % audit events with JSON payloads, ~40 %
#     embeddings as real[1536], ~5 % remediation history), in bench/postgres.sh's
#     cluster (/var/tmp/lb-pgbench, port 55432; started when not running and
#     stopped again at exit; the database BENCH_DB is generated when missing
#     and kept for the next run). Lifeboat's source: `lifeboat backup postgres
#     --db URL`; restic's: `pg_dump -Fc -Z0 | restic backup --stdin`. Then 1 %
#     churn (`pgfixture churn URL 0.01`) and a second backup of each: snapshots
#     A and B;
#   - data `stream`: SIZE of half random bytes, half base64 text, backed up
#     with `backup stream` / `restic backup --stdin`; then 1 % of it
#     overwritten in 8 places and backed up again: snapshots A and B.
# Per repetition and destination (local directories; moto's S3, started from
# a venv by this script unless BENCH_S3_ENDPOINT names a running one), fresh
# targets:
#   lifeboat-same   `lifeboat init --copy-params-from SRC`: same blob ids,
#                   only missing blobs move
#   lifeboat-own    `lifeboat init`: its own keys, re-chunked and re-encrypted
#   restic-same     `restic init --from-repo SRC --copy-chunker-params`
#   restic-own      `restic init` (restic copy re-encrypts blobs and never
#                   re-chunks: the copy itself costs the same; measured to show it)
# `full`: snapshot A copied into each target; `incr`: snapshot B copied after
# it (what the churn added). The tools take turns at going first (odd reps
# Lifeboat first). Wall seconds, CPU seconds (user + sys) and peak RSS (/usr/bin/time), the target's
# bytes afterwards (du -sb, or the S3 prefix's object sizes), Lifeboat's own
# bytes_sent / objects_verified (--json) and `uptime`'s load averages before
# each copy go to bench/results/copy-<UTC>.tsv; the report at the end gives,
# per destination, round and target, the median over the reps and the
# paired ratios (restic-same seconds ÷ lifeboat seconds, per rep).
#
# Environment (all optional):
#   BENCH_COPY_DATA    postgres | stream                           [postgres]
#   BENCH_SIZE         fixture size (postgres: when BENCH_DB is generated) or stream size [512M]
#   BENCH_REPS         repetitions                                  [3]
#   BENCH_CHURN        churn fraction between A and B (postgres)    [0.01]
#   BENCH_COPY_DESTS   destinations, space separated: local s3      [local s3]
#   BENCH_RESTIC_OWN   1: also a restic target without --copy-chunker-params [1]
#   BENCH_S3_ENDPOINT  a running S3 (e.g. http://127.0.0.1:5000) instead of moto
#   BENCH_MOTO         moto_server to start  [$LIFEBOAT_TEST_VENV/bin/moto_server (scripts/test.sh's
#                      venv, default .venv-test/), else moto_server on PATH]
#   BENCH_PG_DIR, BENCH_PG_PORT, BENCH_PG_BIN   as bench/postgres.sh
#   BENCH_DB           database (generated when missing)            [copybench]
#   BENCH_TMP          scratch parent (repositories)                [/var/tmp]
#   BENCH_RESULTS      where the result files go                    [bench/results]
#   LIFEBOAT_BIN       lifeboat binary       [target/release/lifeboat, built]
#   PGFIXTURE_BIN      fixture helper        [built from bench/pgfixture]
set -euo pipefail
export LC_ALL=C
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DATA=${BENCH_COPY_DATA:-postgres}
SIZE=${BENCH_SIZE:-512M}
REPS=${BENCH_REPS:-3}
CHURN=${BENCH_CHURN:-0.01}
read -r -a DESTS <<<"${BENCH_COPY_DESTS:-local s3}"
RESTIC_OWN=${BENCH_RESTIC_OWN:-1}
S3=${BENCH_S3_ENDPOINT:-}
D=${BENCH_PG_DIR:-/var/tmp/lb-pgbench}
PORT=${BENCH_PG_PORT:-55432}
PGBIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
DB=${BENCH_DB:-copybench}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
case $DATA in postgres | stream) ;; *) echo "BENCH_COPY_DATA: postgres or stream, not $DATA" >&2; exit 2 ;; esac
# Throwaway repositories of this run only.
export LIFEBOAT_PASSWORD=bench-password-copy LIFEBOAT_TO_PASSWORD=bench-password-copy \
  LIFEBOAT_FROM_PASSWORD=bench-password-copy RESTIC_PASSWORD=bench-password-copy \
  RESTIC_FROM_PASSWORD=bench-password-copy
export PGPASSWORD=${PGPASSWORD:-benchpw}
USER_=bench

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/copy-$STAMP.tsv
LOG=$RESULTS_DIR/copy-$STAMP.log
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }
load() { uptime | sed 's/.*load average: //; s/,//g'; }
command -v restic >/dev/null || { log "installing restic"; apt-get install -y -qq restic >/dev/null; }
if [[ -z ${LIFEBOAT_BIN:-} ]]; then
  cargo build --release -q -p lifeboat --manifest-path "$ROOT/Cargo.toml" >&2
  LIFEBOAT_BIN=$ROOT/target/release/lifeboat
fi
LB=$LIFEBOAT_BIN

W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/lb-copy-bench.XXXXXX")
MOTO_PID=''
PG_STARTED=''
cleanup() {
  set +e
  if [[ -n $MOTO_PID ]]; then kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null; fi
  if [[ -n $PG_STARTED ]]; then
    (cd "$D" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$D/data" -m fast -w stop >/dev/null 2>&1)
  fi
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- S3 ------------------------------------------------------------------------
want_s3=''
for d in "${DESTS[@]}"; do [[ $d == s3 ]] && want_s3=1; done
MOTO=${BENCH_MOTO:-${LIFEBOAT_TEST_VENV:-$ROOT/.venv-test}/bin/moto_server}
[[ -x $MOTO ]] || MOTO=$(command -v moto_server || true)
PY=python3
[[ -n $MOTO && -x $(dirname "$MOTO")/python ]] && PY=$(dirname "$MOTO")/python
if [[ -n $want_s3 ]]; then
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
  if [[ -z $S3 ]]; then
    [[ -n $MOTO ]] || { log "no moto_server: set BENCH_MOTO or BENCH_S3_ENDPOINT, or BENCH_COPY_DESTS=local"; exit 1; }
    mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$MOTO" -H 127.0.0.1 -p "$mport" >"$W/moto.log" 2>&1 &
    MOTO_PID=$!
    S3=http://127.0.0.1:$mport
    for _ in $(seq 1 150); do curl -fsS "$S3/" >/dev/null 2>&1 && break; sleep 0.2; done
    log "moto_server on $S3"
  fi
  BUCKET=lifeboat-copy-bench-$$
  curl -fsS -X PUT "$S3/$BUCKET" >/dev/null
fi
# The repository.s3 settings Lifeboat uses for an s3:// target (its url is
# never used: --repo names the repository of each command).
CFG=$W/s3.yaml
if [[ -n $want_s3 ]]; then
  printf 'repository:\n  url: s3://%s/unused\n  s3:\n    endpoint: %s\n    region: us-east-1\n    allow_http: true\n' \
    "$BUCKET" "$S3" >"$CFG"
fi
lbc() { # DEST ARGS...: lifeboat, with the S3 settings for an s3 destination
  local dest=$1; shift
  if [[ $dest == s3 ]]; then "$LB" --config "$CFG" "$@"; else "$LB" "$@"; fi
}
s3_bytes() { # PREFIX: the sum of its objects' sizes, through the S3 API
  "$PY" - "$S3" "$BUCKET" "$1" <<'EOF' 2>/dev/null || echo -
import sys, boto3
s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')
n = 0
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3] + '/'):
    n += sum(o['Size'] for o in page.get('Contents', []))
print(n)
EOF
}
s3_delete() { # PREFIX: frees moto's memory between reps
  "$PY" - "$S3" "$BUCKET" "$1" <<'EOF' 2>/dev/null || true
import sys, boto3
s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3] + '/'):
    keys = [{'Key': o['Key']} for o in page.get('Contents', [])]
    if keys:
        s3.delete_objects(Bucket=sys.argv[2], Delete={'Objects': keys})
EOF
}

# ---- the sources ---------------------------------------------------------------
lb_src=$W/lb-src
rs_src=$W/rs-src
"$LB" --repo "$lb_src" init -q >/dev/null
restic -q -r "$rs_src" init >/dev/null
du_() { du -sb "$1" | cut -f1; }
timed() { # LABEL CMD...: wall seconds of CMD into the log
  local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
  log "$(printf '%s: %.2f s (load %s)' "$LABEL" "$(echo "$t1 - $t0" | bc)" "$(load)")"
}

if [[ $DATA == postgres ]]; then
  if [[ -z ${PGFIXTURE_BIN:-} ]]; then
    CARGO_TARGET_DIR=$ROOT/target/bench-pgfixture \
      cargo build --release -q --manifest-path "$BENCH_DIR/pgfixture/Cargo.toml" >&2
    PGFIXTURE_BIN=$ROOT/target/bench-pgfixture/release/lifeboat-bench-pgfixture
  fi
  url() { echo "postgresql://$USER_@127.0.0.1:$PORT/$1"; }
  # The cluster, as bench/postgres.sh makes it (the same directory and port).
  if ! "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
    if [[ ! -d $D/data ]]; then
      mkdir -p "$D"; chown postgres:postgres "$D"; chmod 700 "$D"
      echo "$PGPASSWORD" >"$D/pw"; chown postgres "$D/pw"
      (cd "$D" && runuser -u postgres -- "$PGBIN/initdb" -D "$D/data" -U "$USER_" \
        --pwfile="$D/pw" -A scram-sha-256 >/dev/null)
      cat >>"$D/data/postgresql.conf" <<EOF
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
    PG_STARTED=1
  fi
  psql_() { "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_" -v ON_ERROR_STOP=1 -qAtX "$@"; }
  if [[ -z $(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
    psql_ -d postgres -c "CREATE DATABASE $DB"
    log "generating $SIZE into $DB"
    "$PGFIXTURE_BIN" gen "$(url "$DB")" "$SIZE" 2>&1 | tee -a "$LOG" >&2
    psql_ -d "$DB" -c "VACUUM ANALYZE"
  fi
  log "database $DB: $(psql_ -d "$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")"
  backup_both() {
    LABEL="lifeboat backup postgres ($1)" timed \
      "$LB" --repo "$lb_src" -q backup postgres --db "$(url "$DB")" >/dev/null
    LABEL="pg_dump -Fc -Z0 | restic backup --stdin ($1)" timed \
      bash -c "set -o pipefail; '$PGBIN/pg_dump' -h 127.0.0.1 -p $PORT -U $USER_ -Fc -Z0 -d $DB \
        | restic -q -r '$rs_src' backup --stdin --stdin-filename $DB.dump >/dev/null"
  }
  backup_both A
  LABEL="churn $CHURN" timed "$PGFIXTURE_BIN" churn "$(url "$DB")" "$CHURN" >>"$LOG"
  backup_both B
else
  bytes=$("$PY" -c "import sys; s=sys.argv[1]; m={'K':1<<10,'M':1<<20,'G':1<<30}.get(s[-1:],1); print(int(float(s.rstrip('KMG'))*m))" "$SIZE")
  log "generating a stream of $bytes bytes (half random, half base64 text)"
  half=$((bytes / 2))
  { head -c "$half" /dev/urandom; head -c $((half * 3 / 4)) /dev/urandom | base64 -w 120; } >"$W/v1"
  python3 - "$W/v1" "$W/v2" <<'EOF'
import random, sys
data = bytearray(open(sys.argv[1], 'rb').read())
rng = random.Random(7)
for _ in range(8):  # 1 % of the bytes, in 8 places
    at = rng.randrange(0, len(data) - len(data) // 800)
    data[at:at + len(data) // 800] = rng.randbytes(len(data) // 800)
open(sys.argv[2], 'wb').write(data)
EOF
  for v in v1 v2; do
    LABEL="lifeboat backup stream ($v)" timed "$LB" --repo "$lb_src" -q backup stream --name dump <"$W/$v" >/dev/null
    LABEL="restic backup --stdin ($v)" timed restic -q -r "$rs_src" backup --stdin --stdin-filename dump <"$W/$v" >/dev/null
  done
  rm -f "$W/v1" "$W/v2"
fi
# Snapshot ids, oldest first, and the logical size of each (Lifeboat's).
mapfile -t LB_IDS < <("$LB" --repo "$lb_src" --json snapshots | python3 -c '
import json, sys
for s in sorted(json.load(sys.stdin), key=lambda s: s["time"]): print(s["id"], s["size"])')
mapfile -t RS_IDS < <(restic -r "$rs_src" snapshots --json | python3 -c '
import json, sys
for s in sorted(json.load(sys.stdin), key=lambda s: s["time"]): print(s["id"])')
[[ ${#LB_IDS[@]} -eq 2 && ${#RS_IDS[@]} -eq 2 ]] || { log "expected two snapshots in each source"; exit 1; }
SIZE_A=${LB_IDS[0]#* }
SIZE_B=${LB_IDS[1]#* }
log "snapshot A: $SIZE_A bytes, B: $SIZE_B bytes; sources: lifeboat $(du_ "$lb_src") bytes, restic $(du_ "$rs_src") bytes"

# ---- the copies ----------------------------------------------------------------
printf 'rep\tdest\tround\ttarget\tseconds\tcpu_seconds\tmax_rss_kib\ttarget_bytes\tsent_bytes\tobjects_verified\tlogical_bytes\tload_1_5_15\n' >"$OUT"
copy_one() { # REP DEST ROUND NAME LOCATION
  local rep=$1 dest=$2 round=$3 name=$4 loc=$5 l tf jf secs rss usr sys cpu tb sent ver
  local snap_lb=${LB_IDS[0]%% *} snap_rs=${RS_IDS[0]} logical=$SIZE_A
  if [[ $round == incr ]]; then snap_lb=${LB_IDS[1]%% *}; snap_rs=${RS_IDS[1]}; logical=$SIZE_B; fi
  tf=$W/time.txt; jf=$W/copy.json
  l=$(load)
  case $name in
    lifeboat-*)
      local argv=("$LB")
      [[ $dest == s3 ]] && argv+=(--config "$CFG")
      /usr/bin/time -f '%e %M %U %S' -o "$tf" "${argv[@]}" --repo "$lb_src" --json -q copy --to "$loc" "$snap_lb" >"$jf" 2>>"$LOG" ;;
    restic-*)
      /usr/bin/time -f '%e %M %U %S' -o "$tf" restic -q -r "$loc" copy --from-repo "$rs_src" "$snap_rs" >/dev/null ;;
  esac
  read -r secs rss usr sys <"$tf"
  cpu=$(echo "$usr + $sys" | bc)
  sent=-; ver=-
  if [[ $name == lifeboat-* ]]; then
    read -r sent ver < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["bytes_sent"], j["objects_verified"])' "$jf")
  fi
  if [[ $dest == local ]]; then tb=$(du_ "$loc"); else tb=$(s3_bytes "${loc#*"$BUCKET"/}"); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$dest" "$round" "$name" "$secs" "$cpu" "$rss" "$tb" "$sent" "$ver" "$logical" "$l" >>"$OUT"
  log "rep $rep $dest $round $name: ${secs} s (CPU ${cpu} s), ${rss} KiB, target $tb bytes, sent $sent (load $l)"
}
NAMES=(lifeboat-same restic-same lifeboat-own)
[[ $RESTIC_OWN == 1 ]] && NAMES+=(restic-own)
for rep in $(seq 1 "$REPS"); do
  for dest in "${DESTS[@]}"; do
    declare -A LOC=()
    for n in "${NAMES[@]}"; do
      if [[ $dest == local ]]; then LOC[$n]=$W/t$rep/$n; else LOC[$n]=$BUCKET/r$rep/$n; fi
    done
    lbloc() { if [[ $dest == local ]]; then echo "${LOC[$1]}"; else echo "s3://${LOC[$1]}"; fi; }
    rsloc() { if [[ $dest == local ]]; then echo "${LOC[$1]}"; else echo "s3:$S3/${LOC[$1]}"; fi; }
    lbc "$dest" --repo "$(lbloc lifeboat-same)" init -q --copy-params-from "$lb_src" >/dev/null
    lbc "$dest" --repo "$(lbloc lifeboat-own)" init -q >/dev/null
    restic -q -r "$(rsloc restic-same)" init --from-repo "$rs_src" --copy-chunker-params >/dev/null
    [[ $RESTIC_OWN == 1 ]] && restic -q -r "$(rsloc restic-own)" init >/dev/null
    order=("${NAMES[@]}")
    if (( rep % 2 == 0 )); then order=(); for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do order+=("${NAMES[i]}"); done; fi
    for round in full incr; do
      for n in "${order[@]}"; do
        case $n in lifeboat-*) loc=$(lbloc "$n") ;; *) loc=$(rsloc "$n") ;; esac
        copy_one "$rep" "$dest" "$round" "$n" "$loc"
      done
    done
    if [[ $dest == local ]]; then rm -rf "$W/t$rep"; else s3_delete "r$rep"; fi
  done
done

# ---- report --------------------------------------------------------------------
python3 - "$OUT" <<'EOF' | tee -a "$LOG"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
med = statistics.median
keys = []
for r in rows:
    k = (r['dest'], r['round'], r['target'])
    if k not in keys:
        keys.append(k)
print('median over %d rep(s); MB = 10^6 bytes of the snapshot (logical); "x restic-same" = restic-same seconds / this one, per rep, median [min-max]'
      % len({r['rep'] for r in rows}))
print(f"{'dest':6s} {'round':5s} {'target':14s} {'seconds':>8s} {'CPU s':>7s} {'MB/s':>8s} {'RSS MiB':>8s} {'target MB':>10s} {'sent MB':>8s} {'x restic-same':>22s}  load (1 min)")
for k in keys:
    rs = [r for r in rows if (r['dest'], r['round'], r['target']) == k]
    secs = [float(r['seconds']) for r in rs]
    mbs = [int(r['logical_bytes']) / 1e6 / max(float(r['seconds']), 0.01) for r in rs]
    ratios = []
    for r in rs:
        peer = [p for p in rows if (p['rep'], p['dest'], p['round'], p['target']) == (r['rep'], k[0], k[1], 'restic-same')]
        if peer:
            ratios.append(float(peer[0]['seconds']) / max(float(r['seconds']), 0.01))
    tb = [int(r['target_bytes']) for r in rs if r['target_bytes'].isdigit()]
    sent = [int(r['sent_bytes']) for r in rs if r['sent_bytes'].isdigit()]
    loads = sorted(float(r['load_1_5_15'].split()[0]) for r in rs)
    ratio = f"{med(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else '-'
    cpu = med(float(r['cpu_seconds']) for r in rs)
    print(f"{k[0]:6s} {k[1]:5s} {k[2]:14s} {med(secs):8.2f} {cpu:7.2f} {med(mbs):8.1f} {med(int(r['max_rss_kib']) for r in rs) / 1024:8.0f} "
          f"{(med(tb) / 1e6 if tb else float('nan')):10.1f} {(med(sent) / 1e6 if sent else float('nan')):8.1f} {ratio:>22s}  {loads[0]:.2f}-{loads[-1]:.2f}")
EOF
log "results: $OUT"
