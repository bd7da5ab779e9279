#!/usr/bin/env bash
# Physical backups, WAL archiving and PITR (issue 21): Lifeboat vs pgBackRest
# on the benchmark database, same cluster, same run. See docs/benchmarks.md,
# "Physical backups and PITR (issue 21)".
#
#   bench/physical.sh
#   PGBACKREST_NEW=/path/to/pgbackrest bench/physical.sh   # also a newer pgBackRest,
#                                                          # with repo1-bundle + repo1-block
#
# One PostgreSQL 15 cluster (started or reused, owned by the `postgres` OS user,
# archive_mode on), the fixture generated once with bench/pgfixture. Then, in order:
#   1. archive_command := a script that pushes each segment to EVERY tool in turn
#      (lifeboat wal push, then each pgBackRest's archive-push, sync), logging each
#      push's time; so every repository gets every segment
#   2. full base backup with each tool (lifeboat backup physical; pgbackrest
#      --type=full), time, repository growth (base part only, WAL part apart)
#   3. BENCH_HOURS x { pgfixture churn 1 %; each tool's base backup (pgBackRest
#      --type=incr) }: time, bytes added to each repository's base-backup part,
#      lifeboat's own bytes_new/bytes_stored (--json); the hour's WAL bytes
#      (pg_wal_lsn_diff) and each repository's archive growth separately
#   4. restore of the newest base backup to the end of the archive into an empty
#      directory: `lifeboat restore physical latest --to-latest` (files, recovery,
#      promotion, clean stop: its --json splits restore_seconds/recovery_seconds)
#      vs `pgbackrest restore` (files) then the server started on it until it
#      has promoted, then stopped (fast), each part timed
#   5. PITR: BENCH_PITR_SECONDS of pgbench (-R BENCH_PITR_RATE) past the newest
#      base backup, the target time T noted, more commits after T, the archive
#      caught up; then `lifeboat restore physical --to-time T` vs `pgbackrest
#      restore --type=time --target=T --target-action=promote` + start until
#      promoted + stop, as in 4
#   6. archive-push throughput on a fixed set of BENCH_PUSH_SEGMENTS real
#      segments (fetched back from Lifeboat's archive, copied aside): one process
#      per segment in a row, as PostgreSQL's archiver runs them, each tool into a
#      fresh repository: lifeboat wal push (key file), pgbackrest archive-push
#      sync, and async (archive-async=y, spool, process-max 2, the segments'
#      .ready files present as in pg_wal/archive_status)
# Every line records `uptime`'s load averages taken just before the measurement.
# Nothing runs in parallel with a measurement (the archiver runs during the churn
# and the pgbench load, which are not measurements; the script waits for it to
# catch up before each backup).
#
# Encryption: Lifeboat's repository always is (AES-256-GCM; opened with a key
# file, no Argon2id per command); every pgBackRest repository uses
# repo1-cipher-type=aes-256-cbc. Compression: pgBackRest's default (gz, level 6,
# configuration "gz"), and zst level 1 (configuration "zst"), comparable with
# Lifeboat's repository default (zstd level 1). process-max=BENCH_PGBR_PROCESS_MAX
# (2, the machine's cores) and start-fast=y (pg_basebackup --checkpoint=fast is
# what Lifeboat runs) for every pgBackRest.
#
# Environment (all optional):
#   BENCH_SIZE             fixture size                                   [1.6G]
#   BENCH_HOURS            simulated hours of churn                       [10]
#   BENCH_CHURN            churn fraction per hour                        [0.01]
#   BENCH_PITR_SECONDS     pgbench time past the base backup (PITR)       [600]
#   BENCH_PITR_RATE        pgbench -R (transactions/s)                    [300]
#   BENCH_PUSH_SEGMENTS    segments for the archive-push throughput       [32]
#   BENCH_RESTORE_ROUNDS   rounds of 4. and of 5., Lifeboat first in odd  [2]
#   BENCH_PGBR_CONFIGS     Debian pgBackRest configurations: gz zst       [gz zst]
#   BENCH_PGBR_PROCESS_MAX pgBackRest process-max                         [2]
#   BENCH_LB_BLOCK_KIB     lifeboat --block-size (empty: its default)     []
#   BENCH_SKIP             steps to skip, words of: restore pitr push     []
#   PGBACKREST_NEW         a newer pgbackrest binary: configuration "new"
#                          (repo1-bundle=y, repo1-block=y, default gz)    []
#   PGBACKREST_NEW_COMPRESS  its compress-type:level, e.g. zst:1          [default]
#   BENCH_PG_DIR           cluster + scratch directory (kept)             [/var/tmp/lb-physbench]
#   BENCH_PG_PORT          port                                           [55433]
#   BENCH_PG_BIN           PostgreSQL binaries                            [/usr/lib/postgresql/15/bin]
#   BENCH_DB               database name (generated when missing)         [kubernaut]
#   BENCH_RESULTS          where the result files go                      [bench/results]
#   LIFEBOAT_BIN           lifeboat binary                   [target/release/lifeboat, built]
#   PGFIXTURE_BIN          fixture helper                    [built from bench/pgfixture]
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SIZE=${BENCH_SIZE:-1.6G}
HOURS=${BENCH_HOURS:-10}
CHURN=${BENCH_CHURN:-0.01}
PITR_SECONDS=${BENCH_PITR_SECONDS:-600}
PITR_RATE=${BENCH_PITR_RATE:-300}
PUSH_SEGMENTS=${BENCH_PUSH_SEGMENTS:-32}
RESTORE_ROUNDS=${BENCH_RESTORE_ROUNDS:-2}
read -r -a PGBR_CONFIGS <<< "${BENCH_PGBR_CONFIGS-gz zst}"
PROCESS_MAX=${BENCH_PGBR_PROCESS_MAX:-2}
LB_BLOCK=${BENCH_LB_BLOCK_KIB:-}
SKIP=" ${BENCH_SKIP:-} "
D=${BENCH_PG_DIR:-/var/tmp/lb-physbench}
PORT=${BENCH_PG_PORT:-55433}
PGBIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
DB=${BENCH_DB:-kubernaut}
USER_=bench
export PGPASSWORD=${PGPASSWORD:-benchpw}
url() { echo "postgresql://$USER_@127.0.0.1:$PORT/$1"; }

if [[ -z ${LIFEBOAT_BIN:-} ]]; then
  cargo build --release -p lifeboat --manifest-path "$ROOT/Cargo.toml" >&2
  LIFEBOAT_BIN=$ROOT/target/release/lifeboat
fi
if [[ -z ${PGFIXTURE_BIN:-} ]]; then
  CARGO_TARGET_DIR=$ROOT/target/bench-pgfixture \
    cargo build --release --manifest-path "$BENCH_DIR/pgfixture/Cargo.toml" >&2
  PGFIXTURE_BIN=$ROOT/target/bench-pgfixture/release/lifeboat-bench-pgfixture
fi
command -v pgbackrest >/dev/null || { echo "pgbackrest missing: apt-get install -y pgbackrest" >&2; exit 2; }
command -v bc >/dev/null || { echo "bc missing" >&2; exit 2; }

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/physical-$STAMP.tsv
LOG=$RESULTS_DIR/physical-$STAMP.log
printf 'step\ttool\twall_s\tbytes\tnote\tload_1_5_15\n' > "$OUT"
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }
load() { uptime | sed 's/.*load average: //; s/,//g'; }
skip() { [[ $SKIP == *" $1 "* ]]; }
as_pg() { runuser -u postgres -- "$@"; }

# ---- cluster -------------------------------------------------------------------
if ! "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
  if [[ ! -d $D/data ]]; then
    mkdir -p "$D"; chown postgres:postgres "$D"; chmod 700 "$D"
    echo "$PGPASSWORD" > "$D/pw"; chown postgres "$D/pw"
    (cd "$D" && as_pg "$PGBIN/initdb" -D "$D/data" -U "$USER_" --pwfile="$D/pw" \
       --auth-host=scram-sha-256 --auth-local=trust >/dev/null)
    # full_page_writes stays on (the default): the hour's WAL is reported.
    cat >> "$D/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$D'
shared_buffers = 512MB
maintenance_work_mem = 256MB
fsync = off
synchronous_commit = off
max_wal_size = 4GB
checkpoint_timeout = 30min
max_connections = 40
timezone = 'UTC'
archive_mode = on
archive_command = '/bin/true'
EOF
  fi
  (cd "$D" && as_pg env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
     "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null)
fi
psql_() { "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_" -v ON_ERROR_STOP=1 -qAtX "$@"; }
q() { psql_ -d postgres -c "$1"; }
if [[ -z $(q "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
  q "ALTER SYSTEM SET archive_command = '/bin/true'"; q "SELECT pg_reload_conf()" >/dev/null
  q "CREATE DATABASE $DB"
  log "generating $SIZE"
  "$PGFIXTURE_BIN" gen "$(url "$DB")" "$SIZE" | tee -a "$LOG" >&2
  psql_ -d "$DB" -c "VACUUM ANALYZE"
fi
if [[ -z $(q "SELECT 1 FROM pg_database WHERE datname = 'pitr'") ]]; then
  q "CREATE DATABASE pitr"
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U "$USER_" -i -s 1 -q pitr >/dev/null 2>&1
fi
DB_BYTES=$(q "SELECT pg_database_size('$DB')")
CLUSTER_BYTES=$(q "SELECT sum(pg_database_size(datname)) FROM pg_database")

# ---- tools ---------------------------------------------------------------------
S=$D/scratch
rm -rf "$S"; mkdir -p "$S/bin"; chown postgres:postgres "$S"; chmod 700 "$S"
# Copies, so that a concurrent build cannot swap a binary in the middle of the run.
cp "$LIFEBOAT_BIN" "$S/bin/lifeboat"
LB_BIN=$S/bin/lifeboat
PGBR_DEB=$(command -v pgbackrest)
declare -A PGBR_BIN
for c in "${PGBR_CONFIGS[@]}"; do PGBR_BIN[$c]=$PGBR_DEB; done
PGBACKREST_NEW=${PGBACKREST_NEW:-}
NEW_COMPRESS=${PGBACKREST_NEW_COMPRESS:-}
# pgBackRest reads every PGBACKREST_* variable as an option ("invalid option 'new'")
export -n PGBACKREST_NEW PGBACKREST_NEW_COMPRESS
if [[ -n $PGBACKREST_NEW ]]; then
  cp "$PGBACKREST_NEW" "$S/bin/pgbackrest-new"
  PGBR_BIN[new]=$S/bin/pgbackrest-new
  PGBR_CONFIGS+=(new)
fi
for c in "${PGBR_CONFIGS[@]}"; do mkdir -p "$S/pgbr-$c.log"; done
chown -R postgres:postgres "$S"

LBR=$S/lifeboat-repo
LBKEY=$S/lifeboat.key
as_pg env LIFEBOAT_PASSWORD=bench-password "$LB_BIN" -q --repo "$LBR" init >/dev/null
as_pg env LIFEBOAT_PASSWORD=bench-password "$LB_BIN" -q --repo "$LBR" key add --new-key-file "$LBKEY" >/dev/null
lb() { as_pg "$LB_BIN" --repo "$LBR" --key-file "$LBKEY" "$@"; }

# pgbr_conf NAME REPO [extra lines]: a configuration file whose stanza is NAME
pgbr_conf() {
  local name=$1 repo=$2; shift 2
  local f=$S/pgbr-$name.conf
  {
    echo "[global]"
    echo "repo1-path=$repo"
    echo "repo1-cipher-type=aes-256-cbc"
    echo "repo1-cipher-pass=bench-cipher-pass-$name"
    echo "repo1-retention-full=2"
    echo "lock-path=$S/pgbr-$name.lock"
    echo "log-path=$S/pgbr-$name.log"
    echo "spool-path=$S/pgbr-$name.spool"
    echo "log-level-console=warn"
    echo "log-level-file=info"
    echo "start-fast=y"
    echo "process-max=$PROCESS_MAX"
    local l; for l in "$@"; do echo "$l"; done
    echo "[$name]"
    echo "pg1-path=$D/data"
    echo "pg1-port=$PORT"
    echo "pg1-socket-path=$D"
    echo "pg1-user=$USER_"
  } > "$f"
  chown postgres:postgres "$f"
  echo "$f"
}
declare -A PGBR_CONF
for c in "${PGBR_CONFIGS[@]}"; do
  case $c in
    gz) PGBR_CONF[$c]=$(pgbr_conf gz "$S/pgbr-gz-repo") ;;
    zst) PGBR_CONF[$c]=$(pgbr_conf zst "$S/pgbr-zst-repo" compress-type=zst compress-level=1) ;;
    new)
      extra=(repo1-bundle=y repo1-block=y)
      if [[ -n $NEW_COMPRESS ]]; then
        extra+=("compress-type=${NEW_COMPRESS%%:*}" "compress-level=${NEW_COMPRESS##*:}")
      fi
      PGBR_CONF[$c]=$(pgbr_conf new "$S/pgbr-new-repo" "${extra[@]}") ;;
    *) echo "unknown pgBackRest configuration $c (gz, zst)" >&2; exit 2 ;;
  esac
done
pgbr() { local c=$1; shift; as_pg "${PGBR_BIN[$c]}" --config="${PGBR_CONF[$c]}" --stanza="$c" "$@"; }
for c in "${PGBR_CONFIGS[@]}"; do pgbr "$c" stanza-create; done

# The archive command: every tool gets every segment, in turn; each push timed into
# archive-push.tsv. Its name contains "pgbackrest" (pgBackRest's checks look for it).
ARCH=$S/archive-pgbackrest-and-lifeboat.sh
ARCHLOG=$S/archive-push.tsv
{
  cat <<'EOS'
#!/bin/bash
# archive_command: $1 = %p; every tool pushes it, in turn; fails if any fails
p=$1; f=${p##*/}; rc=0
push() {
  local t=$1 s e r; shift
  s=$(date +%s%N); "$@"; r=$?; e=$(date +%s%N)
  printf '%s\t%s\t%d\t%d\n' "$t" "$f" "$r" $(( (e - s) / 1000 )) >> "$ARCHLOG"
  [[ $r == 0 ]] || rc=1
}
EOS
  printf 'ARCHLOG=%q\n' "$ARCHLOG"
  # shellcheck disable=SC2016 # $p is the generated script's
  printf 'push lifeboat %q --repo %q --key-file %q wal push "$p"\n' "$LB_BIN" "$LBR" "$LBKEY"
  for c in "${PGBR_CONFIGS[@]}"; do
    # shellcheck disable=SC2016
    printf 'push %q %q --config=%q --stanza=%q archive-push "$p"\n' "pgbackrest-$c" "${PGBR_BIN[$c]}" "${PGBR_CONF[$c]}" "$c"
  done
  # shellcheck disable=SC2016
  echo 'exit $rc'
} > "$ARCH"
chmod 755 "$ARCH"; chown postgres:postgres "$ARCH"
: > "$ARCHLOG"; chown postgres:postgres "$ARCHLOG"
q "ALTER SYSTEM SET archive_command = '$ARCH %p'"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1

# wait until the server's current segment (switched) and everything before it
# are archived: no .ready file left (pg_switch_wal marks the segment .ready before
# it returns; last_archived_wal is no help, a .backup label can come after a
# later segment)
archive_catch_up() {
  q "SELECT pg_switch_wal()" >/dev/null
  local i=0
  while compgen -G "$D/data/pg_wal/archive_status/*.ready" >/dev/null; do
    sleep 0.2; i=$((i + 1))
    (( i < 18000 )) || { log "archiver stuck"; exit 1; }
  done
}
archive_catch_up
log "database $DB: $DB_BYTES bytes; cluster $CLUSTER_BYTES bytes; tools: lifeboat ${PGBR_CONFIGS[*]}"
{
  echo "# lifeboat: $("$LB_BIN" --version) ($LIFEBOAT_BIN)"
  echo "# pgbackrest: $("$PGBR_DEB" version) ($PGBR_DEB)"
  [[ -z $PGBACKREST_NEW ]] || echo "# pgbackrest new: $("$PGBACKREST_NEW" version) ($PGBACKREST_NEW)"
  echo "# postgres: $("$PGBIN/postgres" --version)"
  echo "# $(nproc) cores; size $SIZE hours $HOURS churn $CHURN; pitr ${PITR_SECONDS}s at ${PITR_RATE} tps"
  for c in "${PGBR_CONFIGS[@]}"; do sed "s/^/# $c: /" "${PGBR_CONF[$c]}"; done
} >> "$LOG"

# ---- measuring -----------------------------------------------------------------
# measure STEP TOOL -- CMD...: wall time of CMD; BYTES and NOTE go on the line.
measure() {
  local step=$1 tool=$2; shift 2
  local l; l=$(load)
  local start end
  start=$(date +%s.%N)
  "$@" || { log "FAILED: $step $tool"; return 1; }
  end=$(date +%s.%N)
  LAST_WALL=$(echo "$end - $start" | bc)
  printf '%s\t%s\t%.2f\t%s\t%s\t%s\n' "$step" "$tool" "$LAST_WALL" "${BYTES:-}" "${NOTE:-}" "$l" >> "$OUT"
  log "$step $tool: ${LAST_WALL}s load=$l"
}
# rows without a process to time
record() { printf '%s\t%s\t\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" "$(load)" >> "$OUT"; log "$1 $2: $3 ${4:-}"; }
du_() { if [[ -e $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }
# base-backup part and WAL part of each repository
base_bytes() {
  case $1 in
    lifeboat) echo $(( $(du_ "$LBR") - $(du_ "$LBR/wal") )) ;;
    *) echo $(( $(du_ "$S/pgbr-$1-repo") - $(du_ "$S/pgbr-$1-repo/archive") )) ;;
  esac
}
wal_bytes() {
  case $1 in
    lifeboat) du_ "$LBR/wal" ;;
    *) du_ "$S/pgbr-$1-repo/archive" ;;
  esac
}
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
lb_block=(); [[ -z $LB_BLOCK ]] || lb_block=(--block-size "$LB_BLOCK")

record database_bytes "$DB" "$DB_BYTES"
record cluster_bytes all "$CLUSTER_BYTES"
record datadir_bytes_excl_pg_wal all "$(( $(du_ "$D/data") - $(du_ "$D/data/pg_wal") ))"

# one base backup of each tool; $1 = step name, $2 = pgBackRest type
backups() {
  local step=$1 type=$2 b w c
  archive_catch_up
  b=$(base_bytes lifeboat); w=$(wal_bytes lifeboat)
  measure "$step" lifeboat bash -c "runuser -u postgres -- '$LB_BIN' --repo '$LBR' --key-file '$LBKEY' --json backup physical --db '$(url "$DB")' ${lb_block[*]} > '$S/lb-$step.json'"
  record "${step}_added" lifeboat "$(( $(base_bytes lifeboat) - b ))" \
    "bytes_new=$(json_field "$S/lb-$step.json" bytes_new) bytes_stored=$(json_field "$S/lb-$step.json" bytes_stored) bytes_read=$(json_field "$S/lb-$step.json" bytes_read) wal_during=$(( $(wal_bytes lifeboat) - w ))"
  for c in "${PGBR_CONFIGS[@]}"; do
    archive_catch_up
    b=$(base_bytes "$c"); w=$(wal_bytes "$c")
    measure "$step" "pgbackrest-$c" pgbr "$c" backup --type="$type"
    record "${step}_added" "pgbackrest-$c" "$(( $(base_bytes "$c") - b ))" "wal_during=$(( $(wal_bytes "$c") - w ))"
  done
}

backups full full
for h in $(seq 1 "$HOURS"); do
  archive_catch_up
  lsn0=$(q "SELECT pg_current_wal_lsn()")
  declare -A w0=()
  w0[lifeboat]=$(wal_bytes lifeboat)
  for c in "${PGBR_CONFIGS[@]}"; do w0[$c]=$(wal_bytes "$c"); done
  measure "churn_h$h" pgfixture "$PGFIXTURE_BIN" churn "$(url "$DB")" "$CHURN"
  lsn1=$(q "SELECT pg_current_wal_lsn()")
  archive_catch_up
  record "wal_h$h" postgres "$(q "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")" "pg_wal_lsn_diff over the churn"
  record "wal_h${h}_archived" lifeboat "$(( $(wal_bytes lifeboat) - w0[lifeboat] ))"
  for c in "${PGBR_CONFIGS[@]}"; do record "wal_h${h}_archived" "pgbackrest-$c" "$(( $(wal_bytes "$c") - w0[$c] ))"; done
  record "database_bytes_h$h" "$DB" "$(q "SELECT pg_database_size('$DB')")"
  backups "incr_h$h" incr
done
record repo_final lifeboat "$(du_ "$LBR")" "wal=$(wal_bytes lifeboat)"
for c in "${PGBR_CONFIGS[@]}"; do record repo_final "pgbackrest-$c" "$(du_ "$S/pgbr-$c-repo")" "wal=$(wal_bytes "$c")"; done

# ---- restores ------------------------------------------------------------------
RPORT=$((PORT + 1))
RSOCK=$S/rsock; mkdir -p "$RSOCK"; chown postgres:postgres "$RSOCK"; chmod 700 "$RSOCK"
fresh_dir() { rm -rf "$1"; mkdir -p "$1"; chown postgres:postgres "$1"; chmod 700 "$1"; }
# a server on a pgBackRest-restored directory: its own port and socket, archiving
# off (as Lifeboat's private server), started, polled every 0.3 s until promoted
# (as Lifeboat polls), then stopped fast (Lifeboat stops it cleanly too)
start_until_promoted() {
  local dir=$1
  as_pg env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" \
    -o "-c port=$RPORT -c listen_addresses='' -c unix_socket_directories='$RSOCK' -c archive_mode=off" start >/dev/null
  local i=0
  until [[ $("$PGBIN/psql" -h "$RSOCK" -p "$RPORT" -U "$USER_" -d postgres -qAtX -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; do
    sleep 0.3; i=$((i + 1))
    if (( i > 72000 )) || ! as_pg "$PGBIN/pg_ctl" -D "$dir" status >/dev/null; then
      log "server on $dir did not promote"; tail -n 20 "$dir.log" >&2; return 1
    fi
  done
}
stop_server() { as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null; }
replay_facts() {
  "$PGBIN/psql" -h "$RSOCK" -p "$RPORT" -U "$USER_" -d postgres -qAtX -c \
    "SELECT 'replay_lsn=' || pg_last_wal_replay_lsn() || ' replay_time=' || coalesce(pg_last_xact_replay_timestamp()::text, '')"
}

# restore_lifeboat KIND STEP / restore_pgbr KIND STEP: KIND = latest, or time
# (PITR to $TARGET, UTC)
restore_lifeboat() {
  local kind=$1 step=$2 dir=$S/restore
  rm -rf "$dir"
  local target=(--to-latest)
  [[ $kind == latest ]] || target=(--to-time "${TARGET}Z")
  measure "$step" lifeboat bash -c "runuser -u postgres -- '$LB_BIN' --repo '$LBR' --key-file '$LBKEY' --json restore physical latest --pgdata '$dir' ${target[*]} > '$S/lb-$step.json'"
  record "${step}_parts" lifeboat "$(json_field "$S/lb-$step.json" bytes)" \
    "restore_seconds=$(json_field "$S/lb-$step.json" restore_seconds) recovery_seconds=$(json_field "$S/lb-$step.json" recovery_seconds) replay_lsn=$(json_field "$S/lb-$step.json" replay_lsn) replay_time=$(json_field "$S/lb-$step.json" replay_time)"
  rm -rf "$dir"
}
restore_pgbr() {
  local kind=$1 step=$2 dir=$S/restore c
  for c in "${PGBR_CONFIGS[@]}"; do
    fresh_dir "$dir"
    local opts=()
    [[ $kind == latest ]] || opts=(--type=time "--target=${TARGET/T/ }+00" --target-action=promote)
    local s0 s1 s2 s3
    s0=$(date +%s.%N)
    measure "${step}_files" "pgbackrest-$c" pgbr "$c" --pg1-path="$dir" restore "${opts[@]}"
    s1=$(date +%s.%N)
    measure "${step}_recovery" "pgbackrest-$c" start_until_promoted "$dir"
    local facts; facts=$(replay_facts)
    s2=$(date +%s.%N)
    measure "${step}_stop" "pgbackrest-$c" stop_server "$dir"
    s3=$(date +%s.%N)
    record "${step}_total" "pgbackrest-$c" "" "wall_total=$(echo "$s3 - $s0" | bc) files=$(echo "$s1 - $s0" | bc) recovery=$(echo "$s2 - $s1" | bc) stop=$(echo "$s3 - $s2" | bc) $facts"
    rm -rf "$dir" "$dir.log"
  done
}
# BENCH_RESTORE_ROUNDS rounds, Lifeboat first in odd rounds, last in even ones
restore_rounds() {
  local kind=$1 step=$2 r
  for r in $(seq 1 "$RESTORE_ROUNDS"); do
    if (( r % 2 )); then restore_lifeboat "$kind" "${step}_r$r"; restore_pgbr "$kind" "${step}_r$r"
    else restore_pgbr "$kind" "${step}_r$r"; restore_lifeboat "$kind" "${step}_r$r"; fi
  done
}

if ! skip restore; then
  archive_catch_up
  restore_rounds latest restore_latest
fi

# ---- PITR ----------------------------------------------------------------------
if ! skip pitr; then
  archive_catch_up
  pw0=$(wal_bytes lifeboat); lsn0=$(q "SELECT pg_current_wal_lsn()")
  log "pgbench for ${PITR_SECONDS}s at ${PITR_RATE} tps (WAL past the base backup)"
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U "$USER_" -n -c 2 -j 2 -R "$PITR_RATE" -T "$PITR_SECONDS" pitr >> "$LOG" 2>&1
  sleep 1.2
  TARGET=$(date -u +%FT%T)
  sleep 1.2
  lsn1=$(q "SELECT pg_current_wal_lsn()")
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U "$USER_" -n -c 2 -j 2 -R "$PITR_RATE" -T 10 pitr >> "$LOG" 2>&1
  archive_catch_up
  record pitr_wal postgres "$(q "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")" "target=$TARGET; WAL from the newest base backup's archive point to the target"
  record pitr_wal_archived lifeboat "$(( $(wal_bytes lifeboat) - pw0 ))" "segments archived up to the end incl. 10 s after the target"
  restore_rounds time pitr
fi

# ---- archive-push throughput ---------------------------------------------------
if ! skip push; then
  # a stand-in data directory: pg_wal/ with the segments and archive_status/, and
  # global/pg_control (pgBackRest reads it; its async mode wants the segments under
  # pg1-path)
  SEGROOT=$S/pushpg; fresh_dir "$SEGROOT"; as_pg mkdir -p "$SEGROOT/global" "$SEGROOT/pg_wal"
  cp "$D/data/global/pg_control" "$SEGROOT/global/"; chown postgres:postgres "$SEGROOT/global/pg_control"
  SEG=$SEGROOT/pg_wal
  # the PUSH_SEGMENTS segments archived last (every tool archived them; fetched
  # back from Lifeboat's archive)
  last=$(q "SELECT last_archived_wal FROM pg_stat_archiver")
  tl=${last:0:8}; logid=$((16#${last:8:8})); segno=$((16#${last:16:8}))
  segs=()
  for ((i = PUSH_SEGMENTS - 1; i >= 0; i--)); do
    n=$(( logid * 256 + segno - i ))
    segs+=("$(printf '%s%08X%08X' "$tl" $((n / 256)) $((n % 256)))")
  done
  for n in "${segs[@]}"; do lb wal fetch "$n" "$SEG/$n"; done
  record push_segments all "$(du -cb "$SEG"/0* | tail -n 1 | cut -f1)" "${segs[0]}..${segs[-1]} (${#segs[@]})"

  # Lifeboat: a fresh repository opened with a key file
  PR=$S/push-lifeboat; rm -rf "$PR"
  as_pg env LIFEBOAT_PASSWORD=bench-password "$LB_BIN" -q --repo "$PR" init >/dev/null
  as_pg env LIFEBOAT_PASSWORD=bench-password "$LB_BIN" -q --repo "$PR" key add --new-key-file "$S/push.key" >/dev/null
  push_lb() { for n in "${segs[@]}"; do as_pg "$LB_BIN" --repo "$PR" --key-file "$S/push.key" wal push "$SEG/$n" || return 1; done; }
  NOTE="${#segs[@]} segments" BYTES=$(du_ "$SEG") measure push_sync lifeboat push_lb
  record push_stored lifeboat "$(du_ "$PR/wal")"
  rm -rf "$PR"
  # pgBackRest: each configuration into a fresh repository (its own stanza-create)
  for c in "${PGBR_CONFIGS[@]}"; do
    for mode in sync async; do
      pc=$S/pgbr-push-$c.conf
      sed -e "s|^repo1-path=.*|repo1-path=$S/push-$c-repo|" -e "s|^spool-path=.*|spool-path=$S/push-$c.spool|" \
          -e "s|^lock-path=.*|lock-path=$S/push-$c.lock|" "${PGBR_CONF[$c]}" > "$pc"
      [[ $mode == sync ]] || printf 'archive-async=y\n' | sed -i '/^\[global\]/r /dev/stdin' "$pc"
      chown postgres:postgres "$pc"
      rm -rf "$S/push-$c-repo" "$S/push-$c.spool"
      as_pg "${PGBR_BIN[$c]}" --config="$pc" --stanza="$c" stanza-create
      # async reads the .ready files beside the segment, as in pg_wal
      fresh_dir "$SEG/archive_status"
      for n in "${segs[@]}"; do as_pg touch "$SEG/archive_status/$n.ready"; done
      push_pgbr() {
        for n in "${segs[@]}"; do
          as_pg "${PGBR_BIN[$c]}" --config="$pc" --stanza="$c" --pg1-path="$SEGROOT" archive-push "$SEG/$n" || return 1
          as_pg mv "$SEG/archive_status/$n.ready" "$SEG/archive_status/$n.done" || return 1
        done
      }
      NOTE="${#segs[@]} segments" BYTES=$(du_ "$SEG") measure "push_$mode" "pgbackrest-$c" push_pgbr
      record push_stored "pgbackrest-$c-$mode" "$(du_ "$S/push-$c-repo/archive")"
      rm -rf "$S/push-$c-repo" "$S/push-$c.spool" "$SEG/archive_status"
    done
  done
fi

# in-run pushes by the archive command (every segment, every tool)
python3 - "$ARCHLOG" <<'EOF' | tee -a "$LOG" >&2
import sys, statistics, collections
per = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, f, rc, us = line.rstrip("\n").split("\t")
    if rc == "0" and len(f) == 24:
        per[t].append(int(us) / 1e6)
for t, v in per.items():
    print(f"archive_command {t}: {len(v)} segments, median {statistics.median(v)*1000:.0f} ms, "
          f"mean {statistics.mean(v)*1000:.0f} ms, max {max(v)*1000:.0f} ms")
EOF
cp "$ARCHLOG" "$RESULTS_DIR/physical-$STAMP-archive-push.tsv"
cp "$S"/lb-*.json "$RESULTS_DIR/" 2>/dev/null || true
mkdir -p "$RESULTS_DIR/physical-$STAMP-json"; mv "$RESULTS_DIR"/lb-*.json "$RESULTS_DIR/physical-$STAMP-json/" 2>/dev/null || true
q "ALTER SYSTEM SET archive_command = '/bin/true'"; q "SELECT pg_reload_conf()" >/dev/null
log "results: $OUT"
