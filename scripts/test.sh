#!/usr/bin/env bash
# Lifeboat's test command: the one the README gives and .ci/run calls.
#
# On a fresh machine with the Rust toolchain, Python 3 and the PostgreSQL
# binaries it installs what the tests need, starts the services they use on
# loopback, and runs:
#   cargo fmt --all -- --check
#   scripts/check-workspace.py   (layering, one version per dependency, module cycles)
#   cargo clippy --workspace --all-targets --profile ci -- -D warnings
#   cargo test --profile ci --workspace [EXTRA ARGS...]
#     (a whole run, with no arguments or only --no-fail-fast, in two lanes
#     at once: see run_in_lanes)
# The `ci` profile (Cargo.toml) is release for the dependencies and
# opt-level 1 for the workspace's crates: a cold build is minutes shorter.
# Extra arguments are passed to `cargo test`, e.g.
#   scripts/test.sh -p lifeboat-repo --test storage_s3
#   scripts/test.sh -p lifeboat --test cli repo_cli::   (crates/lifeboat/tests/main.rs)
#   scripts/test.sh -- --nocapture
#
# Environment:
#   LIFEBOAT_TEST_VENV    virtualenv for the Python test tools (default .venv-test/)
#   LIFEBOAT_SKIP_LINT=1  skip fmt and clippy (quicker local iterations)
#
# Services started (and stopped on exit):
#   moto's S3 server on 127.0.0.1:<free port>; the tests read its address
#   from LIFEBOAT_TEST_S3_ENDPOINT.
#   crates/lifeboat-repo/tests/append_only.rs starts a second moto of its
#   own from LIFEBOAT_TEST_VENV (exported below), with IAM enforced
#   (INITIAL_NO_AUTH_ACTION_COUNT), on another free loopback port.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# moto's S3 server; version verified with the storage tests.
MOTO_VERSION="5.2.5"
VENV="${LIFEBOAT_TEST_VENV:-$ROOT/.venv-test}"
LOG_DIR="$ROOT/target/test-logs"
mkdir -p "$LOG_DIR"

log() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'scripts/test.sh: error: %s\n' "$*" >&2
    exit 1
}

# --- system packages ---------------------------------------------------------

APT_UPDATED=0

# ensure_apt_packages PKG...: install the Debian packages that are missing.
# Runs `apt-get update` at most once per run, and nothing at all when every
# package is already installed.
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "these packages are needed but apt-get is not available: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "installing ${missing[*]} needs root (or sudo)"
        sudo=(sudo)
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- Python virtualenv with moto -----------------------------------------------

find_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "Python 3.9 or newer is needed for the S3 test server (moto)"
}

venv_has_moto() {
    [ -x "$VENV/bin/moto_server" ] &&
        "$VENV/bin/python" - "$MOTO_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(version("moto") != sys.argv[1])
EOF
}

setup_venv() {
    if venv_has_moto; then
        return 0
    fi
    local python
    python="$(find_python)"
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        log "creating virtualenv $VENV"
        rm -rf "$VENV"
        if ! "$python" -m venv "$VENV" >"$LOG_DIR/venv.log" 2>&1; then
            # Debian's python3 needs python3-venv for ensurepip.
            rm -rf "$VENV"
            ensure_apt_packages python3-venv
            "$python" -m venv "$VENV" || die "cannot create the virtualenv $VENV"
        fi
    fi
    # Never commit the virtualenv.
    printf '*\n' >"$VENV/.gitignore"
    log "installing moto[server]==$MOTO_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" ||
        die "pip could not install moto[server]==$MOTO_VERSION"
    venv_has_moto || die "moto $MOTO_VERSION is not usable in $VENV after installing it"
}

# --- services ----------------------------------------------------------------

PIDS=()

# Process groups of the test lanes still running (run_in_lanes).
LANE_GROUPS=()

cleanup() {
    local pid
    for pid in "${LANE_GROUPS[@]+"${LANE_GROUPS[@]}"}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${LANE_GROUPS[@]+"${LANE_GROUPS[@]}"}"; do
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_http URL PID NAME: wait until URL answers any HTTP status (≤ 60 s).
wait_http() {
    local url="$1" pid="$2" name="$3" _
    for _ in $(seq 1 120); do
        if ! kill -0 "$pid" 2>/dev/null; then
            die "$name exited while starting; see $LOG_DIR"
        fi
        if "$VENV/bin/python" - "$url" <<'EOF' 2>/dev/null; then
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer means the server is up
EOF
            return 0
        fi
        sleep 0.5
    done
    die "$name did not answer at $url within 60 s; see $LOG_DIR"
}

start_moto() {
    local port pid
    port="$(free_port)"
    log "starting moto's S3 server on 127.0.0.1:$port"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_DIR/moto.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/" "$pid" "moto_server"
    export LIFEBOAT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    # For tests that start a moto of their own (append_only.rs: IAM enforced).
    export LIFEBOAT_TEST_VENV="$VENV"
    # Dummy credentials: with them set, no client ever looks for real ones
    # (instance metadata), and everything S3 goes to the loopback server.
    export AWS_ACCESS_KEY_ID="lifeboat-test"
    export AWS_SECRET_ACCESS_KEY="lifeboat-test-secret"
    export AWS_REGION="us-east-1"
    export AWS_DEFAULT_REGION="us-east-1"
    export AWS_ENDPOINT_URL="$LIFEBOAT_TEST_S3_ENDPOINT"
    export AWS_ALLOW_HTTP="true"
    export AWS_EC2_METADATA_DISABLED="true"
}

# --- PostgreSQL ----------------------------------------------------------------

# setup_postgres: LATER WORK GOES HERE (the PostgreSQL issue). Find the Debian
# binaries in /usr/lib/postgresql/<major>/bin (15 on these machines),
# `ensure_apt_packages postgresql-15 ...` if they are missing, and export
# what the tests read (e.g. LIFEBOAT_TEST_PG_BIN). Tests create their own
# clusters in temporary directories as a non-root user.
setup_postgres() {
    :
}

# --- headless Chromium ----------------------------------------------------------

# crates/lifeboat/tests/status_page.rs renders the daemon's status page in
# headless /usr/bin/chromium (and fails, saying to run this script, without
# it). Debian's `chromium`; fonts-liberation is its recommended font, which
# --no-install-recommends would leave out.
setup_chromium() {
    if [ ! -x /usr/bin/chromium ]; then
        ensure_apt_packages chromium fonts-liberation
    fi
}

# --- Redis and openssl (crates/lifeboat-region) ---------------------------------

# crates/lifeboat-region/tests/redis.rs starts its own redis-server processes
# (Debian's `redis-server`; a primary and a replica on free loopback ports in
# temporary directories); tests/health.rs makes a self-signed certificate
# with Debian's `openssl`. Both fail, saying to run this script, without them.
setup_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
        ensure_apt_packages redis-server openssl
    fi
}

# --- BIND 9 -----------------------------------------------------------------------

# crates/lifeboat-region/tests/dns_rfc2136.rs starts its own `named`
# (/usr/sbin/named, in the foreground, on a free loopback port, in a temporary
# directory), queries it with `dig` and writes with `nsupdate` (Debian's bind9
# and bind9-dnsutils); without them it fails, saying to run this script.
setup_bind() {
    if [ ! -x /usr/sbin/named ] || ! command -v dig >/dev/null 2>&1 ||
        ! command -v nsupdate >/dev/null 2>&1; then
        ensure_apt_packages bind9 bind9-dnsutils
    fi
}

# --- promtool ------------------------------------------------------------------

# crates/lifeboat/tests/promtool.rs runs promtool on deploy/'s alert rules
# (check rules, and their unit tests in deploy/tests/), the dashboard's
# queries and the daemon's /metrics (and fails, saying to run this script,
# without it). Debian's `prometheus` package brings it; nothing starts the
# Prometheus server it also installs (no systemd in CI containers, and the
# tests never need it).
setup_promtool() {
    if ! command -v promtool >/dev/null 2>&1; then
        ensure_apt_packages prometheus
    fi
    command -v promtool >/dev/null 2>&1 ||
        die "promtool is still not on PATH after installing Debian's prometheus package"
}

# --- Patroni and etcd (crates/lifeboat-region) ---------------------------------

# crates/lifeboat-region/tests/patroni.rs starts its own etcd (Debian's
# `etcd-server`, 3.4) and Patroni (Debian's `patroni`, 3.0.2, run as the
# `postgres` user) on free loopback ports in temporary directories; without
# them it fails, saying to run this script. Debian's `patroni` package enables
# no service of its own; `etcd-server` does, so it is stopped and disabled
# right after installation (the tests run their own).
setup_patroni() {
    if [ ! -x /usr/bin/patroni ] || ! command -v etcd >/dev/null 2>&1; then
        ensure_apt_packages patroni etcd-server
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now etcd >/dev/null 2>&1 || true
        fi
    fi
}

# --- protoc (crates/lifeboat-region's etcd client) ----------------------------

# The `etcd-client` crate (lifeboat-region::authority) compiles etcd's protobuf
# definitions when it is built, with Debian's `protoc`. Its tests
# (tests/authority.rs) run the `etcd` that setup_patroni installs.
setup_protoc() {
    # libprotobuf-dev holds google/protobuf/*.proto, which etcd's definitions
    # import; it is only a Recommends of protobuf-compiler, and
    # ensure_apt_packages installs without recommends.
    ensure_apt_packages protobuf-compiler libprotobuf-dev
}

# --- the multi-region test bed (crates/lifeboat-testbed) ----------------------

# The bed (network namespaces, docs/testbed.md) needs `ip` (iproute2),
# `iptables` (partitions between two sites, and the NFQUEUE delay where the
# kernel has no `sch_netem`), `setpriv` (util-linux: PostgreSQL as `postgres`
# inside a namespace), etcd (setup_patroni) and `etcdctl` (Debian's
# `etcd-client`); without them it fails, naming this script. The fault
# suite's writer (bench/failover-report.py writer, crates/lifeboat/tests/
# failover_faults.rs) is Python with Debian's psycopg2 (Patroni needs it too).
setup_testbed() {
    ensure_apt_packages iproute2 iptables util-linux etcd-client python3-psycopg2
}

# --- run -----------------------------------------------------------------------

command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH; install the Rust toolchain"

setup_venv
start_moto
setup_postgres
setup_chromium
setup_redis
setup_bind
setup_promtool
setup_patroni
setup_protoc
setup_testbed

if [ "${LIFEBOAT_SKIP_LINT:-0}" != "1" ]; then
    log "cargo fmt --all -- --check"
    cargo fmt --all -- --check
    log "scripts/check-workspace.py"
    "$(find_python)" scripts/check-workspace.py
    log "cargo clippy --workspace --all-targets --profile ci -- -D warnings"
    cargo clippy --workspace --all-targets --profile ci -- -D warnings
fi

# The whole workspace, unless the extra arguments pick packages themselves.
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
    --) break ;;
    -p | -p* | --package | --package=*) scope=() ;;
    esac
done

# The test binaries whose tests run alone (their leases and deadlines must
# not compete with other tests of the same binary: `alone.rs`), and the
# rest. A full run runs the two lanes side by side; see run_in_lanes.
TIMED_TESTS=(daemons timing)

# other_test_targets: every integration test target of the workspace but
# TIMED_TESTS, from `cargo metadata` (so a new test file is never left out).
other_test_targets() {
    cargo metadata --no-deps --format-version 1 |
        "$(find_python)" -c '
import json, sys
timed = set(sys.argv[1:])
meta = json.load(sys.stdin)
for pkg in meta["packages"]:
    for t in pkg["targets"]:
        if "test" in t["kind"] and t["name"] not in timed:
            print(t["name"])
' "${TIMED_TESTS[@]}"
}

# run_in_lanes [--no-fail-fast]: the whole suite in two lanes at once, each
# a `cargo test` of the binaries built first by one `cargo test --no-run`:
#   timed: TIMED_TESTS, one after the other (each runs its modules one at
#          a time, as before); its output goes to target/test-logs/
#          timed-lane.log and is printed when both lanes are done;
#   other: the unit tests, every other integration test binary, the doc
#          tests; printed as they run. `--doc` cannot share an invocation
#          with target selections, and on its own cargo resolves one
#          proc-macro dependency (strsim) without line tables, which
#          rebuilds lifeboat-ops and lifeboat-testbed once (about 40 s).
# The tests wait on servers far more than they compute (a whole run keeps
# these two cores far from busy), so the lanes overlap at little cost to
# the timed tests. Measured on this 2-core machine: daemons 499 s in the
# lane (470-482 s alone), cli 305 s (264-312 s alone); the test phase took
# 590 s where one binary after another took about 950 s. LIFEBOAT_TEST_LANES=0 runs
# everything in one `cargo test`, one binary after another (to tell a
# timing failure caused by the overlap from a real one).
run_in_lanes() {
    local common=(--profile ci --workspace "$@") targets=() name
    while IFS= read -r name; do
        targets+=(--test "$name")
    done < <(other_test_targets)
    local timed=()
    for name in "${TIMED_TESTS[@]}"; do
        timed+=(--test "$name")
    done
    log "cargo test ${common[*]} --no-run (every test binary, built once)"
    cargo test "${common[@]}" --no-run
    local lane_log="$LOG_DIR/timed-lane.log" timed_pid other_pid timed_status=0 other_status=0
    # Each lane in a process group of its own (job control on while they
    # start), so that a SIGTERM or Ctrl-C of this script stops the lanes'
    # cargo and test processes too (cleanup kills LANE_GROUPS): `wait`
    # lets the trap run at once, where a foreground `cargo test` would
    # have deferred it until every test had ended.
    set -m
    log "timed lane: cargo test ${common[*]} ${timed[*]} (output in $lane_log)"
    cargo test "${common[@]}" "${timed[@]}" >"$lane_log" 2>&1 &
    timed_pid=$!
    log "other lane: cargo test ${common[*]} --lib --bins ${targets[*]}; then --doc"
    (
        status=0
        cargo test "${common[@]}" --lib --bins "${targets[@]}" || status=$?
        if [ "$status" -eq 0 ] || [[ " ${common[*]} " == *" --no-fail-fast "* ]]; then
            cargo test "${common[@]}" --doc || status=$?
        fi
        exit "$status"
    ) &
    other_pid=$!
    set +m
    LANE_GROUPS+=("$timed_pid" "$other_pid")
    wait "$other_pid" || other_status=$?
    log "waiting for the timed lane (${timed[*]})"
    wait "$timed_pid" || timed_status=$?
    LANE_GROUPS=()
    log "timed lane output ($lane_log):"
    cat "$lane_log"
    if [ "$timed_status" -ne 0 ] || [ "$other_status" -ne 0 ]; then
        die "tests failed: timed lane exit $timed_status, other lane exit $other_status"
    fi
    log "both lanes passed"
}

if [ "${#scope[@]}" -gt 0 ] && [ "${LIFEBOAT_TEST_LANES:-1}" != "0" ] &&
    { [ "$#" -eq 0 ] || { [ "$#" -eq 1 ] && [ "$1" = "--no-fail-fast" ]; }; }; then
    run_in_lanes "$@"
    exit 0
fi
log "cargo test --profile ci ${scope[*]} $*"
cargo test --profile ci "${scope[@]}" "$@"
