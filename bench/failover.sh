#!/usr/bin/env bash
# Switchover and manual failover between two regions with `lifeboat region
# switchover | failover`, under pgbench load, measured by an independent
# writer; Patroni's own in-region failover on the same machine as the
# reference (issue 20). docs/benchmarks.md, "Failover (issue 20)".
#
#   bench/failover.sh
#   BENCH_FO_ROUNDS=1 BENCH_FO_PATRONI_PROFILES=fast bench/failover.sh   a quick look
#
# What it does, all on 127.0.0.1, in a temporary directory removed on exit:
#   1. one etcd member (the authority), BIND 9 serving the zone with a TSIG
#      key for dynamic updates, a PostgreSQL 15 primary (us-east, initdb) and
#      an empty eu-west that `lifeboat region replicate --from us-east --to
#      eu-west` seeds as its streaming standby; both regions in agent mode
#      (`pgdata` + `control: {pg_ctl}`) so the CLI can run every step; then
#      `lifeboat region traffic apply` once.
#   2. the writer (bench/failover-report.py writer: Python + libpq, no
#      Lifeboat code) commits one numbered row every BENCH_FO_TICK seconds
#      through whatever BIND answers for app.<zone> (192.0.2.10 = us-east's
#      port, 192.0.2.20 = eu-west's; `target_session_attrs=read-write`) and
#      logs each acknowledged id with its time.
#   3. per round, with P the current primary region and S the standby, each
#      event under `pgbench -c CLIENTS` on P (started 5 s before it):
#        - switchover P -> S (`region switchover --to S`), then S -> P;
#        - failover: P's server stopped hard (`pg_ctl stop -m immediate`),
#          at once `region failover --to S` (again with `--accept-data-loss`
#          only when the lag guard refuses: exit 2; recorded), then P
#          rebuilt as S's standby (`region replicate --from S --to P
#          --replace`) and the two swap roles for the next round.
#      Per event: the command's wall time and exit code, the failover
#      record's RTO (writes accepted, DNS) and RPO from its --json report,
#      the writer's longest gap between acks and the time from the event to
#      the ack ending it, and acknowledged rows missing on the new primary.
#   4. the reference: per Patroni profile (BENCH_FO_PATRONI_PROFILES:
#      `default` = ttl 30, loop_wait 10, retry_timeout 10; `fast` = ttl 10,
#      loop_wait 2, retry_timeout 4), a two-node Patroni cluster (Debian's
#      patroni, the same etcd), the same writer on both nodes' ports,
#      pgbench on the leader; per round the leader's Patroni is SIGKILLed
#      and its PostgreSQL stopped hard (`pg_ctl stop -m immediate`): the
#      replica must take the leader key after the TTL and promote. Measured
#      the same way (the event's end: the replica answers writable); then
#      the killed node is started again and rejoins as a replica.
#   5. report (failover-report.py report): median / max per system and kind;
#      events in BENCH_RESULTS/failover-<UTC>.tsv.
#   6. automatic failover by the daemons on the multi-region test bed (network
#      namespaces, 50 ms per region, three etcd members, BIND in the witness),
#      per profile in BENCH_FO_AUTO_PROFILES (`fast`: checks 1 s x 3, lease 6 s;
#      `seed`: checks 30 s x 3, lease 10 s), BENCH_FO_AUTO_ROUNDS rounds each:
#      a random fault (the primary region killed whole or partitioned) at a
#      random point of the checks' cycle under pgbench in that region;
#      measured from the injection: writes accepted by the new region (the
#      writer's first ack from it), DNS answering it (dig every 100 ms), the
#      record's RTO and RPO, acknowledged rows lost, acks by the old primary
#      after the epoch bump (must be 0); BENCH_RESULTS/failover-auto-<UTC>.tsv.
#      Needs root. (Parts 3-4 run without daemons: no region lease, so a
#      manual failover's wait for the old primary's lease ends at once.)
#
# Environment (all optional):
#   BENCH_FO_ROUNDS            rounds (each system, each profile)          [3]
#   BENCH_FO_CLIENTS           pgbench clients                             [4]
#   BENCH_FO_SCALE             pgbench -i scale                            [5]
#   BENCH_FO_TICK              the writer's interval, seconds              [0.05]
#   BENCH_FO_PATRONI_PROFILES  `default fast`, `fast`, or empty (none)     [default fast]
#   BENCH_FO_AUTO_PROFILES     automatic rounds: `fast seed`, one, or empty [fast seed]
#   BENCH_FO_AUTO_ROUNDS       rounds per automatic profile                [3]
#   BENCH_FO_FAULT             automatic rounds' fault: kill or partition  [drawn]
#   BENCH_PG_BIN               PostgreSQL binaries   [/usr/lib/postgresql/15/bin]
#   BENCH_RESULTS              where the result files go                   [bench/results]
#   LIFEBOAT_BIN               lifeboat binary [target/release/lifeboat, built]
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
ROUNDS=${BENCH_FO_ROUNDS:-3}
CLIENTS=${BENCH_FO_CLIENTS:-4}
SCALE=${BENCH_FO_SCALE:-5}
TICK=${BENCH_FO_TICK:-0.05}
PROFILES=${BENCH_FO_PATRONI_PROFILES-default fast}
AUTO_PROFILES=${BENCH_FO_AUTO_PROFILES-fast seed}
AUTO_ROUNDS=${BENCH_FO_AUTO_ROUNDS:-3}
PGBIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
HELPER=$BENCH_DIR/failover-report.py
if [[ -z ${LIFEBOAT_BIN:-} ]]; then
  cargo build --release -p lifeboat --manifest-path "$ROOT/Cargo.toml" >&2
  LIFEBOAT_BIN=$ROOT/target/release/lifeboat
fi
for t in initdb pg_ctl pgbench psql pg_basebackup; do
  [[ -x $PGBIN/$t ]] || { echo "no $PGBIN/$t: install postgresql-15 (scripts/test.sh does)" >&2; exit 1; }
done
for t in etcd /usr/sbin/named dig curl setpriv; do
  command -v "$t" >/dev/null || { echo "$t is needed: scripts/test.sh installs etcd-server, bind9, bind9-dnsutils" >&2; exit 1; }
done
[[ -z $PROFILES ]] || [[ -x /usr/bin/patroni ]] || { echo "/usr/bin/patroni is needed (scripts/test.sh installs Debian's patroni)" >&2; exit 1; }
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || { echo "python3-psycopg2 is needed (Debian's patroni depends on it)" >&2; exit 1; }

# Secrets for this throwaway setup only, passed through the environment.
export PGPASSWORD=bench-fo-superuser LIFEBOAT_PASSWORD=bench-fo-repository
export REGION_PG_PASSWORD=$PGPASSWORD REGION_REPL_PASSWORD=bench-fo-replication
REGION_TSIG_SECRET=$(head -c 32 /dev/urandom | base64)
export REGION_TSIG_SECRET
USER_=bench
ZONE=bench.test
US_ADDR=192.0.2.10
EU_ADDR=192.0.2.20

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_DIR/failover-$STAMP.tsv
LOG=$RESULTS_DIR/failover-$STAMP.log
log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }
load() { uptime | sed 's/.*load average: //; s/,//g'; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

W=$(mktemp -d /var/tmp/lb-failover.XXXXXX)
PIDS=()       # etcd and named, killed at exit
declare -A PAT_PID=() PAT_API=() PAT_PG=()   # Patroni nodes: pid (the live one), ports
PGBENCH_PID=''
WRITER_PID=''
as_pg() { (cd "$W" && runuser -u postgres -- "$@"); }
cleanup() {
  set +e
  for p in "$PGBENCH_PID" "$WRITER_PID" "${PAT_PID[@]}" "${PIDS[@]}"; do
    [[ -n $p ]] && kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  for d in "$W"/*/data; do
    [[ -f $d/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# named drops root's capabilities (no CAP_DAC_OVERRIDE): it must be able to
# traverse $W, owned by postgres, to its own directory.
chown postgres:postgres "$W"; chmod 711 "$W"

# --- etcd ------------------------------------------------------------------
EC=$(free_port); EP=$(free_port); EM=$(free_port)
etcd --name m0 --data-dir "$W/etcd" \
  --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
  --listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
  --listen-metrics-urls "http://127.0.0.1:$EM" \
  --initial-cluster "m0=http://127.0.0.1:$EP" --initial-cluster-state new \
  --heartbeat-interval 100 --election-timeout 1000 >"$W/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$EM/health" 2>/dev/null | grep -q '"health":"true"' && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$EM/health" | grep -q '"health":"true"' || { log "etcd did not start"; cat "$W/etcd.log" >&2; exit 1; }

# --- BIND ------------------------------------------------------------------
mkdir -p "$W/bind"; chmod 700 "$W/bind"
BP=$(free_port)
cat >"$W/bind/key.conf" <<EOF
key "lifeboat-key" {
    algorithm hmac-sha256;
    secret "$REGION_TSIG_SECRET";
};
EOF
chmod 600 "$W/bind/key.conf"
cat >"$W/bind/named.conf" <<EOF
include "$W/bind/key.conf";
options {
    directory "$W/bind";
    pid-file "$W/bind/named.pid";
    session-keyfile "$W/bind/session.key";
    managed-keys-directory "$W/bind";
    listen-on port $BP { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
};
controls { };
zone "$ZONE" {
    type primary;
    file "$W/bind/$ZONE.zone";
    allow-update { key lifeboat-key; };
};
EOF
# shellcheck disable=SC2016  # $TTL is the zone file's directive
printf '$TTL 60\n@ IN SOA ns.%s. hostmaster.%s. 1 60 60 600 60\n@ IN NS ns.%s.\nns IN A 127.0.0.1\n' \
  "$ZONE" "$ZONE" "$ZONE" >"$W/bind/$ZONE.zone"
/usr/sbin/named -g -c "$W/bind/named.conf" >"$W/bind/named.log" 2>&1 &
PIDS+=($!)
dig_a() { dig +short +norecurse +time=1 +tries=1 @127.0.0.1 -p "$BP" "app.$ZONE" A | sort | tr '\n' ' '; }
for _ in $(seq 1 100); do
  dig +short +norecurse +time=1 +tries=1 @127.0.0.1 -p "$BP" "$ZONE" SOA 2>/dev/null | grep -q "^ns\.$ZONE\. " && break
  sleep 0.2
done
dig +short +norecurse +time=1 +tries=1 @127.0.0.1 -p "$BP" "$ZONE" SOA | grep -q "^ns\.$ZONE\. " || { log "named did not start"; tail -20 "$W/bind/named.log" >&2; exit 1; }

# --- PostgreSQL: us-east primary, eu-west seeded by Lifeboat ----------------
declare -A PORT DATA
PORT[us-east]=$(free_port)
PORT[eu-west]=$(free_port)
while [[ ${PORT[eu-west]} == "${PORT[us-east]}" ]]; do PORT[eu-west]=$(free_port); done
DATA[us-east]=$W/us-east/data
DATA[eu-west]=$W/eu-west/data
mkdir -p "$W/us-east" "$W/eu-west/data"
chown postgres:postgres "$W/us-east" "$W/eu-west" "$W/eu-west/data"
chmod 700 "$W/eu-west/data"
echo "$PGPASSWORD" >"$W/pw"; chown postgres "$W/pw"; chmod 600 "$W/pw"
log "etcd on $EC, BIND on $BP, us-east on ${PORT[us-east]}, eu-west on ${PORT[eu-west]}, in $W (load $(load))"
as_pg "$PGBIN/initdb" -D "${DATA[us-east]}" -U "$USER_" --pwfile="$W/pw" -A scram-sha-256 \
  -E UTF8 --locale=C >/dev/null
rm -f "$W/pw"
cat >>"${DATA[us-east]}/postgresql.conf" <<EOF
port = ${PORT[us-east]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$W/us-east'
max_connections = 40
timezone = 'UTC'
EOF
as_pg "$PGBIN/pg_ctl" -D "${DATA[us-east]}" -l "$W/us-east/log" -w start >/dev/null

"$LIFEBOAT_BIN" --repo "$W/repo" init -q >/dev/null
CFG=$W/regions.yaml
cat >"$CFG" <<EOF
repository:
  url: $W/repo
  password: {env: LIFEBOAT_PASSWORD}
objectives:
  - {scenario: region-failure, rto: 15m, rpo: 5m, priority: P0}
regions:
  us-east:
    postgres:
      url: postgresql://$USER_@127.0.0.1:${PORT[us-east]}/postgres
      password: {env: REGION_PG_PASSWORD}
      manager: postgres
      role: primary
      pgdata: ${DATA[us-east]}
      control: {pg_ctl: {bin_dir: $PGBIN}}
    dns: {address: $US_ADDR}
  eu-west:
    postgres:
      url: postgresql://$USER_@127.0.0.1:${PORT[eu-west]}/postgres
      password: {env: REGION_PG_PASSWORD}
      manager: postgres
      role: standby
      replicates_from: us-east
      pgdata: ${DATA[eu-west]}
      control: {pg_ctl: {bin_dir: $PGBIN}}
    dns: {address: $EU_ADDR}
replication:
  user: lifeboat_replication
  password: {env: REGION_REPL_PASSWORD}
traffic:
  provider: rfc2136
  name: app.$ZONE
  ttl: 30
  rfc2136:
    server: "127.0.0.1:$BP"
    zone: $ZONE
    tsig: {name: lifeboat-key, secret: {env: REGION_TSIG_SECRET}}
failover:
  etcd: {endpoints: ["http://127.0.0.1:$EC"]}
  safety_margin: 1s
EOF
lb() { "$LIFEBOAT_BIN" --config "$CFG" "$@"; }

log "seeding eu-west: lifeboat region replicate --from us-east --to eu-west"
t0=$(now)
lb -q region replicate --from us-east --to eu-west >>"$LOG" 2>&1 || { log "region replicate failed (see $LOG)"; exit 1; }
log "replicate took $(echo "$(now) - $t0" | bc) s"
lb -q region traffic apply >>"$LOG" 2>&1 || { log "region traffic apply failed (see $LOG)"; tail -20 "$W/bind/named.log" >>"$LOG"; exit 1; }
log "DNS answers app.$ZONE: $(dig_a)"

psql_at() { "$PGBIN/psql" -h 127.0.0.1 -p "$1" -U "$USER_" -qAtX -v ON_ERROR_STOP=1 -d "${3:-postgres}" -c "$2"; }
psql_at "${PORT[us-east]}" "CREATE TABLE bench_writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
psql_at "${PORT[us-east]}" "CREATE DATABASE pgbench"
log "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -h 127.0.0.1 -p "${PORT[us-east]}" -U "$USER_" -i -q -s "$SCALE" pgbench >>"$LOG" 2>&1

printf 'system\tround\tkind\tfrom\tto\tt_event\tt_cmd\tt_end\tcmd_s\texit\taccept_data_loss\trto_writes_s\trto_dns_s\trpo_s\trpo_exact\twriter_gap_s\twriter_back_s\tlost\tacked\twriter_on_new\tload_1_5_15\n' >"$OUT"

pgbench_start() { # port
  "$PGBIN/pgbench" -h 127.0.0.1 -p "$1" -U "$USER_" -T 600 -c "$CLIENTS" -j 2 -n pgbench >>"$W/pgbench.log" 2>&1 &
  PGBENCH_PID=$!
}
pgbench_stop() {
  [[ -n $PGBENCH_PID ]] || return 0
  kill "$PGBENCH_PID" 2>/dev/null || true
  wait "$PGBENCH_PID" 2>/dev/null || true
  PGBENCH_PID=''
}
writer_start() { # acks-file, mode args...
  /usr/bin/python3 "$HELPER" writer "$1" "$USER_" "$TICK" "${@:2}" &
  WRITER_PID=$!
}
writer_stop() {
  [[ -n $WRITER_PID ]] || return 0
  kill "$WRITER_PID" 2>/dev/null || true
  wait "$WRITER_PID" 2>/dev/null || true
  WRITER_PID=''
}
# The record's fields from a --json document (the report's record, or the
# newest one `region authority` lists): rto_writes rto_dns rpo rpo_exact.
record_fields() {
  python3 - "$1" <<'EOF'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except Exception:
    doc = {}
rec = (doc.get('report') or {}).get('record') or {}
f = lambda k: '-' if rec.get(k) is None else str(rec[k])
print('\t'.join([f('rto_writes_seconds'), f('rto_dns_seconds'), f('rpo_seconds'), f('rpo_exact')]))
EOF
}
LOST_BEFORE=0
# event_row system round kind from to t_event t_end cmd_s exit accept record-fields acks new-primary-port
# (T_CMD: when the command started, after the hard stop for a failover;
# cmd_s = t_end - T_CMD)
event_row() {
  local m gap back missing acked on_new
  m=$(/usr/bin/python3 "$HELPER" measure "${12}" "$6" "$7" "${13}" "$USER_")
  read -r gap back missing acked on_new <<<"$m"
  local lost='nan'
  if [[ $missing != nan ]]; then lost=$((missing - LOST_BEFORE)); LOST_BEFORE=$missing; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "${T_CMD:-$6}" "$7" "$8" "$9" "${10}" "${11}" "$gap" "$back" "$lost" "$acked" "$on_new" "$(load)" >>"$OUT"
  log "  $3 $4 -> $5: command ${8}s exit $9 (accept-data-loss ${10}), record rto_writes/rto_dns/rpo/exact $(tr '\t' ' ' <<<"${11}"), writer gap ${gap}s, back after ${back}s, lost $lost of $acked acked, writer on the new primary: $on_new"
}

# --- Lifeboat rounds ---------------------------------------------------------
ACKS=$W/acks-lifeboat.tsv
writer_start "$ACKS" dns "$BP" "app.$ZONE" "$US_ADDR=${PORT[us-east]},$EU_ADDR=${PORT[eu-west]}"
sleep 3
P=us-east
S=eu-west
switchover() { # round from to kind
  local r=$1 from=$2 to=$3 t0 t1 rc=0
  pgbench_start "${PORT[$from]}"
  sleep 5
  t0=$(now); T_CMD=$t0
  lb --json region switchover --to "$to" >"$W/out.json" 2>>"$LOG" || rc=$?
  t1=$(now)
  cp "$W/out.json" "$RESULTS_DIR/failover-$STAMP.r$r-$4.json"
  pgbench_stop
  event_row lifeboat "$r" "$4" "$from" "$to" "$t0" "$t1" "$(echo "$t1 - $t0" | bc)" "$rc" - \
    "$(record_fields "$W/out.json")" "$ACKS" "${PORT[$to]}"
  [[ $rc == 0 ]] || { log "switchover failed: $(cat "$W/out.json")"; exit 1; }
}
for r in $(seq 1 "$ROUNDS"); do
  log "lifeboat round $r: primary $P, standby $S (load $(load)); DNS: $(dig_a)"
  switchover "$r" "$P" "$S" switchover
  sleep 3
  switchover "$r" "$S" "$P" switchback
  sleep 3
  pgbench_start "${PORT[$P]}"
  sleep 5
  t0=$(now)
  as_pg "$PGBIN/pg_ctl" -D "${DATA[$P]}" -m immediate -w stop >/dev/null
  T_CMD=$(now)
  rc=0; accept=no
  lb --json region failover --to "$S" >"$W/out.json" 2>>"$LOG" || rc=$?
  if [[ $rc == 2 ]]; then
    log "  the lag guard refused: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error"))' "$W/out.json")"
    accept=yes; rc=0
    lb --json region failover --to "$S" --accept-data-loss >"$W/out.json" 2>>"$LOG" || rc=$?
  fi
  t1=$(now)
  cp "$W/out.json" "$RESULTS_DIR/failover-$STAMP.r$r-failover.json"
  pgbench_stop
  event_row lifeboat "$r" failover "$P" "$S" "$t0" "$t1" "$(echo "$t1 - $T_CMD" | bc)" "$rc" "$accept" \
    "$(record_fields "$W/out.json")" "$ACKS" "${PORT[$S]}"
  [[ $rc == 0 ]] || { log "failover failed: $(cat "$W/out.json")"; exit 1; }
  log "  rebuilding $P: region replicate --from $S --to $P --replace"
  t0=$(now)
  lb -q region replicate --from "$S" --to "$P" --replace >>"$LOG" 2>&1 || { log "rebuilding $P failed (see $LOG)"; exit 1; }
  log "  rebuilt in $(echo "$(now) - $t0" | bc) s"
  tmp=$P; P=$S; S=$tmp
  sleep 3
done
writer_stop
T_CMD=''
lb --json region authority >"$RESULTS_DIR/failover-$STAMP.authority.json" 2>>"$LOG" || true
for d in "${DATA[us-east]}" "${DATA[eu-west]}"; do
  [[ -f $d/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1
done
cp "$ACKS" "$RESULTS_DIR/failover-$STAMP.acks-lifeboat.tsv"
cp "$ACKS.errors" "$RESULTS_DIR/failover-$STAMP.acks-lifeboat.errors" 2>/dev/null || true

# --- Patroni reference ---------------------------------------------------------
patroni_start() { # node profile-dcs-json
  local n=$1 d=$W/patroni-$1
  PAT_API[$n]=${PAT_API[$n]:-$(free_port)}
  PAT_PG[$n]=${PAT_PG[$n]:-$(free_port)}
  if [[ ! -d $d ]]; then
    mkdir -p "$d"; chown postgres:postgres "$d"; chmod 700 "$d"
    cat >"$d/patroni.yml" <<EOF
{"scope": "bench-$PROFILE", "name": "$n", "log": {"level": "INFO"},
 "restapi": {"listen": "127.0.0.1:${PAT_API[$n]}", "connect_address": "127.0.0.1:${PAT_API[$n]}"},
 "etcd3": {"hosts": ["127.0.0.1:$EC"]},
 "bootstrap": {"dcs": $2,
   "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "scram-sha-256"}],
   "pg_hba": ["local all all scram-sha-256", "host all all 127.0.0.1/32 scram-sha-256",
              "host replication all 127.0.0.1/32 scram-sha-256"]},
 "postgresql": {"listen": "127.0.0.1:${PAT_PG[$n]}", "connect_address": "127.0.0.1:${PAT_PG[$n]}",
   "data_dir": "$d/data", "bin_dir": "$PGBIN", "pgpass": "$d/pgpass",
   "use_pg_rewind": true, "remove_data_directory_on_rewind_failure": true,
   "remove_data_directory_on_diverged_timelines": true,
   "authentication": {"superuser": {"username": "$USER_", "password": "$PGPASSWORD"},
                      "replication": {"username": "replicator", "password": "$REGION_REPL_PASSWORD"},
                      "rewind": {"username": "$USER_", "password": "$PGPASSWORD"}},
   "parameters": {"unix_socket_directories": "$d", "max_connections": 40, "timezone": "UTC"},
   "basebackup": [{"checkpoint": "fast"}]}}
EOF
    chown postgres:postgres "$d/patroni.yml"; chmod 600 "$d/patroni.yml"
  fi
  (cd "$d" && exec env -i PATH=/usr/bin:/bin HOME="$d" LC_ALL=C.UTF-8 \
    setpriv --reuid postgres --regid postgres --init-groups /usr/bin/patroni "$d/patroni.yml" >>"$d/patroni.log" 2>&1) &
  PAT_PID[$n]=$!
}
api_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" || true; }
wait_until() { # seconds description command...
  local end=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@"; do
    [[ $(date +%s) -lt $end ]] || { log "timed out waiting for $what"; return 1; }
    sleep 0.2
  done
}
is_leader() { [[ $(api_code "${PAT_API[$1]}" /leader) == 200 ]]; }
# Node $2 streams from leader $1 and has replayed to within 1 MB of it
# (pg_basebackup's own WAL sender, application_name pg_basebackup, is not it).
streaming_to() { [[ $(psql_at "${PAT_PG[$1]}" "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$2' AND state = 'streaming' AND pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) < 1048576" 2>/dev/null) == 1 ]]; }
writable() { [[ $(psql_at "${PAT_PG[$1]}" "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; }

for PROFILE in $PROFILES; do
  case $PROFILE in
    default) DCS='{"ttl": 30, "loop_wait": 10, "retry_timeout": 10}' ;;
    fast) DCS='{"ttl": 10, "loop_wait": 2, "retry_timeout": 4}' ;;
    *) log "unknown Patroni profile $PROFILE"; exit 1 ;;
  esac
  PAT_API=(); PAT_PG=()
  rm -rf "$W"/patroni-a "$W"/patroni-b
  log "patroni $PROFILE ($DCS): starting nodes a and b (load $(load))"
  patroni_start a "$DCS"
  wait_until 180 "node a to lead" is_leader a || { tail -50 "$W/patroni-a/patroni.log" >&2; exit 1; }
  patroni_start b "$DCS"
  wait_until 300 "node b to stream from a" streaming_to a b || { tail -50 "$W/patroni-b/patroni.log" >&2; exit 1; }
  psql_at "${PAT_PG[a]}" "CREATE TABLE bench_writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
  psql_at "${PAT_PG[a]}" "CREATE DATABASE pgbench"
  "$PGBIN/pgbench" -h 127.0.0.1 -p "${PAT_PG[a]}" -U "$USER_" -i -q -s "$SCALE" pgbench >>"$LOG" 2>&1
  PACKS=$W/acks-patroni-$PROFILE.tsv
  LOST_BEFORE=0
  writer_start "$PACKS" hosts "${PAT_PG[a]},${PAT_PG[b]}"
  L=a; R=b
  sleep 3
  for r in $(seq 1 "$ROUNDS"); do
    log "patroni $PROFILE round $r: leader $L (load $(load))"
    pgbench_start "${PAT_PG[$L]}"
    sleep 5
    wait_until 60 "node $R to be streaming and caught up" streaming_to "$L" "$R" || exit 1
    t0=$(now)
    kill -9 "${PAT_PID[$L]}"; wait "${PAT_PID[$L]}" 2>/dev/null || true; PAT_PID[$L]=''
    as_pg "$PGBIN/pg_ctl" -D "$W/patroni-$L/data" -m immediate -w stop >/dev/null
    rc=0
    wait_until 180 "node $R to accept writes" writable "$R" || rc=1
    t1=$(now)
    pgbench_stop
    event_row "patroni-$PROFILE" "$r" failover "$L" "$R" "$t0" "$t1" "$(echo "$t1 - $t0" | bc)" - - \
      $'-\t-\t-\t-' "$PACKS" "${PAT_PG[$R]}"
    [[ $rc == 0 ]] || { tail -50 "$W/patroni-$R/patroni.log" >&2; exit 1; }
    log "  restarting node $L"
    patroni_start "$L" "$DCS"
    wait_until 300 "node $L to stream from $R" streaming_to "$R" "$L" || { tail -50 "$W/patroni-$L/patroni.log" >&2; exit 1; }
    tmp=$L; L=$R; R=$tmp
    sleep 3
  done
  writer_stop
  cp "$PACKS" "$RESULTS_DIR/failover-$STAMP.acks-patroni-$PROFILE.tsv"
  for n in a b; do
    kill "${PAT_PID[$n]}" 2>/dev/null || true
    wait "${PAT_PID[$n]}" 2>/dev/null || true
    PAT_PID[$n]=''
  done
  cp "$W/patroni-a/patroni.log" "$RESULTS_DIR/failover-$STAMP.patroni-$PROFILE-a.log" 2>/dev/null || true
  cp "$W/patroni-b/patroni.log" "$RESULTS_DIR/failover-$STAMP.patroni-$PROFILE-b.log" 2>/dev/null || true
done

grep -h "tps = \|latency average\|aborted" "$W/pgbench.log" | sed 's/^/  pgbench: /' >>"$LOG" || true

# --- automatic failover on the test bed ------------------------------------------
# The daemons decide (votes, lease expiry, election) on the multi-region test
# bed of network namespaces (docs/testbed.md: us-east, eu-west 50 ms each,
# the witness); the rounds are an ignored test of the `daemons` binary,
# crates/lifeboat/tests/failover_faults.rs `bench_automatic_failover_rounds`
# (random fault, kill or partition, at a random point of the checks' cycle;
# pgbench in the primary's region). Needs root (network namespaces).
AUTO_OUT=$RESULTS_DIR/failover-auto-$STAMP.tsv
if [[ -n $AUTO_PROFILES ]]; then
  [[ $(id -u) -eq 0 ]] || { log "the test bed needs root: skipping the automatic rounds"; AUTO_PROFILES=''; }
fi
if [[ -n $AUTO_PROFILES ]]; then
  printf 'profile\tround\tfault\tfrom\tto\tdelay_s\twrites_s\tdns_s\trec_rto_writes_s\trec_rto_dns_s\trec_rpo_s\tlost\tacked_after_bump\tacked_by_old\n' >"$AUTO_OUT"
  # The bed's delay program (lifeboat-netdelay) is a binary of another package:
  # `--test daemons` alone would not build it.
  (cd "$ROOT" && cargo build --profile ci --workspace --bins) >>"$LOG" 2>&1
  for AP in $AUTO_PROFILES; do
    log "automatic failover on the test bed: profile $AP, $AUTO_ROUNDS rounds"
    (cd "$ROOT" && BENCH_FO_PROFILE=$AP BENCH_FO_ROUNDS=$AUTO_ROUNDS BENCH_FO_AUTO_TSV=$AUTO_OUT \
      cargo test --profile ci --workspace --test daemons -- --ignored --exact \
      failover_faults::bench_automatic_failover_rounds --nocapture) >>"$LOG" 2>&1 ||
      log "the automatic rounds of profile $AP failed: see $LOG"
  done
fi

/usr/bin/python3 "$HELPER" report "$OUT" | tee -a "$LOG"
[[ -s $AUTO_OUT ]] && /usr/bin/python3 "$HELPER" auto-report "$AUTO_OUT" | tee -a "$LOG"
log "events: $OUT ${AUTO_PROFILES:+$AUTO_OUT}"
