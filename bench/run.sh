#!/usr/bin/env bash
# Functions are called indirectly (once/best_of PREP_FN, mode_$m):
# shellcheck disable=SC2317
# Lifeboat benchmarks: lifeboat vs restic vs zstd on the same generated,
# pg_dump-like input, in the same run. See docs/benchmarks.md.
#
#   bench/run.sh [all|main|chunks|levels|rss]...  (default: all = main chunks levels rss)
#
#   main    backup / restore / re-backup / 1 %-mutated backup:
#           lifeboat `backup stream` vs `restic backup --stdin` vs `zstd -T0`
#           at lifeboat's level
#   chunks  average chunk size study (throughput, repository size, dedup)
#   levels  zstd level study (throughput, CPU, repository size, dedup)
#   rss     peak RSS of a long stream backup, generator piped into lifeboat
#
# Environment (all optional):
#   BENCH_SIZE_MB      input size for main and chunks, MiB        [1024]
#   BENCH_RSS_SIZE_MB  input size for rss, MiB                    [10240]
#   BENCH_RUNS         runs per timing; the best is reported      [3]
#   BENCH_CHUNK_SIZES  average chunk sizes for the study, bytes   [65536 131072 262144 524288 1048576]
#   BENCH_ZSTD_LEVEL   lifeboat's zstd level (init --zstd-level) and
#                      zstd's in the main comparison                [1, lifeboat's default]
#   BENCH_LEVELS       zstd levels for the level study            [1 2 3 6]
#   BENCH_SEED         generator seed                             [1]
#   BENCH_RSS_RESTIC   1 = also measure restic in the rss mode    [0]
#   BENCH_TMP          scratch directory (kept if given)          [a new mktemp -d, removed at the end]
#   BENCH_RESULTS      where result files go                      [bench/results]
#   LIFEBOAT_BIN       use this lifeboat binary instead of building one
#   LIFEBOAT_PASSWORD, RESTIC_PASSWORD                             [bench-password]
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SIZE_MB=${BENCH_SIZE_MB:-1024}
RSS_SIZE_MB=${BENCH_RSS_SIZE_MB:-10240}
RUNS=${BENCH_RUNS:-3}
read -r -a CHUNK_SIZES <<< "${BENCH_CHUNK_SIZES:-65536 131072 262144 524288 1048576}"
ZLEVEL=${BENCH_ZSTD_LEVEL:-1}
read -r -a LEVELS <<< "${BENCH_LEVELS:-1 2 3 6}"
SEED=${BENCH_SEED:-1}
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench-password}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-bench-password}

MODES=("$@")
if [[ ${#MODES[@]} -eq 0 || ${MODES[0]} == all ]]; then
    MODES=(main chunks levels rss)
fi
for m in "${MODES[@]}"; do
    case $m in
        main | chunks | levels | rss) ;;
        *) echo "usage: $0 [all|main|chunks|levels|rss]..." >&2; exit 2 ;;
    esac
done

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ setup

install_missing() {
    local need=()
    command -v restic > /dev/null || need+=(restic)
    command -v zstd > /dev/null || need+=(zstd)
    [[ -x /usr/bin/time ]] || need+=(time)
    if [[ ${#need[@]} -gt 0 ]]; then
        [[ $(id -u) -eq 0 ]] || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
        log "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" > /dev/null
    fi
}

if [[ -n ${BENCH_TMP:-} ]]; then
    WORK=$BENCH_TMP
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-bench.XXXXXX")
    trap 'rm -rf -- "$WORK"' EXIT
fi
export RESTIC_CACHE_DIR=$WORK/restic-cache
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$RESULTS_DIR/results-$STAMP.md
RAW=$RESULTS_DIR/runs-$STAMP.tsv
printf 'label\tseconds\tmax_rss_kib\tuser_s\tsys_s\tcpu\tload1_before\tload1_after\n' > "$RAW"

install_missing

log "building the generator"
cargo build --quiet --release --manifest-path "$BENCH_DIR/gen/Cargo.toml"
GEN_SRC=${CARGO_TARGET_DIR:-$BENCH_DIR/gen/target}/release/dumpgen
if [[ -n ${LIFEBOAT_BIN:-} ]]; then
    LB_SRC=$LIFEBOAT_BIN
else
    log "building lifeboat (release)"
    cargo build --quiet --release -p lifeboat --manifest-path "$ROOT/Cargo.toml"
    LB_SRC=${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat
fi
# Private copies: a concurrent `cargo build` elsewhere must not swap the
# binary under a running benchmark.
mkdir -p "$WORK/bin"
cp "$GEN_SRC" "$WORK/bin/dumpgen"
cp "$LB_SRC" "$WORK/bin/lifeboat"
GEN=$WORK/bin/dumpgen
LB=$WORK/bin/lifeboat

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2> /dev/null | wc -l)
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)

# ------------------------------------------------------------------ helpers

load1() { cut -d' ' -f1 /proc/loadavg; }

# timed LABEL STDIN STDOUT CMD ARGS...
# Runs CMD under /usr/bin/time -v; sets T_SEC (wall, from the shell's clock),
# T_RSS (peak RSS, KiB), T_CPUS (user + system CPU seconds),
# T_LOAD0 / T_LOAD1 (1-minute load before / after).
timed() {
    local label=$1 in=$2 out=$3
    shift 3
    local tf=$WORK/time.txt
    T_LOAD0=$(load1)
    local t0=$EPOCHREALTIME
    if ! /usr/bin/time -v -o "$tf" "$@" < "$in" > "$out" 2>> "$WORK/stderr.log"; then
        tail -n 20 "$WORK/stderr.log" >&2
        die "$label failed: $*"
    fi
    local t1=$EPOCHREALTIME
    T_LOAD1=$(load1)
    T_SEC=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    T_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
    local user sys cpu
    user=$(awk -F': ' '/User time/ { print $2 }' "$tf")
    sys=$(awk -F': ' '/System time/ { print $2 }' "$tf")
    cpu=$(awk -F': ' '/Percent of CPU/ { print $2 }' "$tf")
    T_CPUS=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$T_SEC" "$T_RSS" "$user" "$sys" "$cpu" "$T_LOAD0" "$T_LOAD1" >> "$RAW"
    log "$label: ${T_SEC} s, peak RSS $((T_RSS / 1024)) MiB, cpu $cpu, load $T_LOAD0 -> $T_LOAD1"
}

# Per-measurement aggregates over its runs, keyed by label.
declare -A A_N A_SEC A_CPU A_RSS A_LO A_HI

lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# once KEY PREP_FN STDIN STDOUT CMD ARGS...
# Runs PREP_FN (e.g. a fresh repository), warms STDIN, then CMD once, and
# folds the run into KEY's aggregates: least wall time, least CPU seconds,
# largest peak RSS, lowest and highest 1-minute load seen around the runs.
once() {
    local key=$1 prep=$2 in=$3 out=$4
    shift 4
    "$prep"
    warm "$in"
    local n=$((${A_N[$key]:-0} + 1))
    A_N[$key]=$n
    timed "$key#$n" "$in" "$out" "$@"
    if [[ -z ${A_SEC[$key]:-} ]] || lt "$T_SEC" "${A_SEC[$key]}"; then A_SEC[$key]=$T_SEC; fi
    if [[ -z ${A_CPU[$key]:-} ]] || lt "$T_CPUS" "${A_CPU[$key]}"; then A_CPU[$key]=$T_CPUS; fi
    if ((T_RSS > ${A_RSS[$key]:-0})); then A_RSS[$key]=$T_RSS; fi
    local l
    for l in "$T_LOAD0" "$T_LOAD1"; do
        if [[ -z ${A_LO[$key]:-} ]] || lt "$l" "${A_LO[$key]}"; then A_LO[$key]=$l; fi
        if [[ -z ${A_HI[$key]:-} ]] || lt "${A_HI[$key]}" "$l"; then A_HI[$key]=$l; fi
    done
}

# get KEY: sets B_SEC, B_CPU, B_RSS (KiB), B_LOAD ("lo–hi") from KEY's runs.
get() {
    B_SEC=${A_SEC[$1]}
    B_CPU=${A_CPU[$1]}
    B_RSS=${A_RSS[$1]}
    B_LOAD="${A_LO[$1]}–${A_HI[$1]}"
}

# best_of N KEY PREP_FN STDIN STDOUT CMD ARGS...: N runs in a row, then get.
best_of() {
    local n=$1 i
    shift
    for ((i = 1; i <= n; i++)); do
        once "$@"
    done
    get "$1"
}

noop() { :; }

# Reads a file once so that timed runs see a page-cache-warm input.
warm() {
    [[ -f $1 ]] && cat -- "$1" > /dev/null
    return 0
}

dir_bytes() { du -sb -- "$1" | cut -f1; }
file_bytes() { stat -c %s -- "$1"; }

mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "—"; else printf "%.2f×", a / b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f %%", a * 100 / b }'; }

json_num() { grep -o "\"$1\": *[0-9]*" "$2" | head -n1 | grep -o '[0-9]*$'; }

out() { tee -a "$RESULTS"; }

lb_init() { # lb_init REPO [init args...]; the zstd level is $ZLEVEL
    local repo=$1
    shift
    rm -rf -- "$repo"
    "$LB" --quiet --repo "$repo" init --zstd-level "$ZLEVEL" "$@" > /dev/null
}

restic_init() {
    rm -rf -- "$1"
    restic --quiet --repo "$1" init --repository-version 2 > /dev/null
}

generate_inputs() { # generate_inputs SIZE_MB
    INPUT=$WORK/input-$1M.dump
    MUTATED=$WORK/input-$1M-mutated.dump
    if [[ ! -f $INPUT ]]; then
        log "generating ${1} MiB of dump-like data (seed $SEED)"
        "$GEN" --size "${1}M" --seed "$SEED" --output "$INPUT" --stats
        "$GEN" --size "${1}M" --seed "$SEED" --mutate --output "$MUTATED" --stats 2> "$WORK/mutate.txt"
        cat "$WORK/mutate.txt" >&2
    fi
    INPUT_BYTES=$(file_bytes "$INPUT")
    MUTATED_CHANGED=$(grep -o '[0-9]* bytes changed' "$WORK/mutate.txt" | grep -o '^[0-9]*')
}

header() {
    {
        echo "# Lifeboat benchmark results, $STAMP"
        echo
        echo "- machine: $(nproc) CPUs, $CPU_MODEL, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; kernel $(uname -r)"
        echo "- load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
        if [[ -n ${LIFEBOAT_BIN:-} ]]; then
            echo "- lifeboat: prebuilt binary $LIFEBOAT_BIN (modified $(date -u -r "$LIFEBOAT_BIN" +%Y-%m-%dT%H:%MZ)); repository at commit $COMMIT"
        else
            echo "- lifeboat: built from commit $COMMIT$( ((DIRTY > 0)) && echo " plus $DIRTY uncommitted change(s) in crates/")"
        fi
        echo "- $(restic version | head -n1); $(zstd --version | tr -d "*" | xargs)"
        echo "- modes: ${MODES[*]}; runs per timing: $RUNS (best reported); MB = 10^6 bytes"
        echo
    } | out
}

# ------------------------------------------------------------------ main

mode_main() {
    generate_inputs "$SIZE_MB"
    local LBR=$WORK/lb-repo RR=$WORK/restic-repo ZF=$WORK/out.zst
    prep_lb() { lb_init "$WORK/lb-repo"; }
    prep_restic() { restic_init "$WORK/restic-repo"; }
    # zstd reads the file by name (stdin is /dev/null): warm it here.
    prep_zstd() { rm -f -- "$WORK/out.zst"; warm "$INPUT"; }

    # The tools take turns, round by round, so that a change in the machine's
    # load during the run affects each of them alike.
    local i
    for ((i = 1; i <= RUNS; i++)); do
        log "== backup, round $i of $RUNS"
        once lifeboat-backup prep_lb "$INPUT" "$WORK/lb-backup.json" \
            "$LB" --repo "$LBR" --json backup stream --name bench
        once restic-backup prep_restic "$INPUT" /dev/null \
            restic --repo "$RR" backup --stdin --stdin-filename bench.dump --compression auto --quiet
        once zstd prep_zstd /dev/null /dev/null \
            zstd -q -f -T0 "-$ZLEVEL" "$INPUT" -o "$ZF"
    done
    get lifeboat-backup
    local lb_b=$B_SEC lb_b_cpu=$B_CPU lb_b_rss=$B_RSS lb_b_load=$B_LOAD lb_size
    lb_size=$(dir_bytes "$LBR")
    get restic-backup
    local r_b=$B_SEC r_b_cpu=$B_CPU r_b_rss=$B_RSS r_b_load=$B_LOAD r_size
    r_size=$(dir_bytes "$RR")
    get zstd
    local z_b=$B_SEC z_b_cpu=$B_CPU z_b_rss=$B_RSS z_b_load=$B_LOAD z_size
    z_size=$(file_bytes "$ZF")
    rm -f -- "$ZF"

    log "== verify restores (untimed)"
    "$LB" --quiet --repo "$LBR" restore stream latest | cmp -s - "$INPUT" || die "lifeboat restore differs from the input"
    restic --quiet --repo "$RR" dump latest bench.dump | cmp -s - "$INPUT" || die "restic dump differs from the input"

    for ((i = 1; i <= RUNS; i++)); do
        log "== restore, round $i of $RUNS"
        once lifeboat-restore noop /dev/null /dev/null \
            "$LB" --quiet --repo "$LBR" restore stream latest
        once restic-dump noop /dev/null /dev/null \
            restic --quiet --repo "$RR" dump latest bench.dump
    done
    get lifeboat-restore
    local lb_r=$B_SEC lb_r_cpu=$B_CPU lb_r_rss=$B_RSS lb_r_load=$B_LOAD
    get restic-dump
    local r_r=$B_SEC r_r_cpu=$B_CPU r_r_rss=$B_RSS r_r_load=$B_LOAD

    # Backups of the same input again: every run re-backs-up unchanged data,
    # so all count for time; the repository growth is averaged over the runs.
    local lb_before r_before
    lb_before=$(dir_bytes "$LBR")
    r_before=$(dir_bytes "$RR")
    for ((i = 1; i <= RUNS; i++)); do
        log "== second backup (same input), round $i of $RUNS"
        once lifeboat-backup-again noop "$INPUT" "$WORK/lb-again.json" \
            "$LB" --repo "$LBR" --json backup stream --name bench
        once restic-backup-again noop "$INPUT" /dev/null \
            restic --repo "$RR" backup --stdin --stdin-filename bench.dump --compression auto --quiet
    done
    local before after
    get lifeboat-backup-again
    local lb_a=$B_SEC lb_a_cpu=$B_CPU lb_a_rss=$B_RSS lb_a_load=$B_LOAD
    local lb_a_added=$((($(dir_bytes "$LBR") - lb_before) / RUNS))
    get restic-backup-again
    local r_a=$B_SEC r_a_cpu=$B_CPU r_a_rss=$B_RSS r_a_load=$B_LOAD
    local r_a_added=$((($(dir_bytes "$RR") - r_before) / RUNS))

    log "== backup of the 1 %-mutated input: lifeboat"
    before=$(dir_bytes "$LBR")
    best_of 1 lifeboat-backup-mutated noop "$MUTATED" "$WORK/lb-mut.json" \
        "$LB" --repo "$LBR" --json backup stream --name bench
    after=$(dir_bytes "$LBR")
    local lb_m=$B_SEC lb_m_rss=$B_RSS lb_m_load=$B_LOAD lb_m_added=$((after - before))
    local lb_m_new
    lb_m_new=$(json_num bytes_new "$WORK/lb-mut.json")
    log "== backup of the 1 %-mutated input: restic"
    before=$(dir_bytes "$RR")
    best_of 1 restic-backup-mutated noop "$MUTATED" /dev/null \
        restic --repo "$RR" backup --stdin --stdin-filename bench.dump --compression auto --quiet
    after=$(dir_bytes "$RR")
    local r_m=$B_SEC r_m_rss=$B_RSS r_m_load=$B_LOAD r_m_added=$((after - before))

    local B=$INPUT_BYTES
    {
        echo "## Backup and restore: $(mb "$B") MB ($SIZE_MB MiB) of dump-like data, seed $SEED"
        echo
        echo "The tools take turns round by round. Times are the best of $RUNS runs (single run for the mutated backup); CPU seconds the least; peak RSS the largest over the runs;"
        echo "load is the 1-minute load average seen before/after the runs. Speed and CPU ratios are other ÷ lifeboat time (higher = lifeboat faster or cheaper); size and RSS ratios are lifeboat ÷ other."
        echo
        echo "Lifeboat's repositories use zstd level $ZLEVEL (\`init --zstd-level\`); zstd compresses at the same level."
        echo
        echo "| measurement | lifeboat | restic | zstd -T0 -$ZLEVEL | lifeboat ÷ restic | lifeboat ÷ zstd | load (lifeboat / restic / zstd) |"
        echo "|---|---:|---:|---:|---:|---:|---|"
        echo "| backup, MB/s | $(mbps "$B" "$lb_b") | $(mbps "$B" "$r_b") | $(mbps "$B" "$z_b") | $(ratio "$r_b" "$lb_b") | $(ratio "$z_b" "$lb_b") | $lb_b_load / $r_b_load / $z_b_load |"
        echo "| backup, seconds | $lb_b | $r_b | $z_b | | | |"
        echo "| backup, CPU seconds (user + sys, least of the runs) | $lb_b_cpu | $r_b_cpu | $z_b_cpu | $(ratio "$r_b_cpu" "$lb_b_cpu") | $(ratio "$z_b_cpu" "$lb_b_cpu") | |"
        echo "| backup, peak RSS MiB | $(mib "$lb_b_rss") | $(mib "$r_b_rss") | $(mib "$z_b_rss") | $(ratio "$lb_b_rss" "$r_b_rss") | | |"
        echo "| stored after first backup, MB | $(mb "$lb_size") | $(mb "$r_size") | $(mb "$z_size") | $(ratio "$lb_size" "$r_size") | $(ratio "$lb_size" "$z_size") | |"
        echo "| restore, MB/s | $(mbps "$B" "$lb_r") | $(mbps "$B" "$r_r") | — | $(ratio "$r_r" "$lb_r") | | $lb_r_load / $r_r_load |"
        echo "| restore, seconds | $lb_r | $r_r | — | | | |"
        echo "| restore, CPU seconds | $lb_r_cpu | $r_r_cpu | — | $(ratio "$r_r_cpu" "$lb_r_cpu") | | |"
        echo "| restore, peak RSS MiB | $(mib "$lb_r_rss") | $(mib "$r_r_rss") | — | $(ratio "$lb_r_rss" "$r_r_rss") | | |"
        echo "| second backup (same input), MB/s | $(mbps "$B" "$lb_a") | $(mbps "$B" "$r_a") | — | $(ratio "$r_a" "$lb_a") | | $lb_a_load / $r_a_load |"
        echo "| second backup (same input), CPU seconds | $lb_a_cpu | $r_a_cpu | — | $(ratio "$r_a_cpu" "$lb_a_cpu") | | |"
        echo "| second backup (same input), added bytes | $lb_a_added ($(pct "$lb_a_added" "$B")) | $r_a_added ($(pct "$r_a_added" "$B")) | — | | | |"
        echo "| second backup, peak RSS MiB | $(mib "$lb_a_rss") | $(mib "$r_a_rss") | — | | | |"
        echo "| backup of 1 %-mutated input, MB/s | $(mbps "$B" "$lb_m") | $(mbps "$B" "$r_m") | — | $(ratio "$r_m" "$lb_m") | | $lb_m_load / $r_m_load |"
        echo "| backup of 1 %-mutated input, added to repository | $(mb "$lb_m_added") MB ($(pct "$lb_m_added" "$B")) | $(mb "$r_m_added") MB ($(pct "$r_m_added" "$B")) | — | $(ratio "$lb_m_added" "$r_m_added") | | |"
        echo "| backup of 1 %-mutated input, peak RSS MiB | $(mib "$lb_m_rss") | $(mib "$r_m_rss") | — | | | |"
        echo "| backup of 1 %-mutated input, new plaintext (lifeboat's bytes_new) | $(mb "$lb_m_new") MB ($(pct "$lb_m_new" "$B")) | | | | | |"
        echo
        echo "The mutated input differs from the base in $MUTATED_CHANGED bytes ($(pct "$MUTATED_CHANGED" "$B")), in 1,000 regions of equal length spread over the stream."
        echo
    } | out
}

# ------------------------------------------------------------------ studies

# study_header TITLE NOTE FIRST_COLUMN
study_header() {
    {
        echo "## $1: $(mb "$INPUT_BYTES") MB input, 1 %-mutated second backup"
        echo
        echo "$2 Backup and restore MB/s are the best of $RUNS runs, backup CPU seconds (user + sys) the least."
        echo
        echo "| $3 | chunks (mean size) | backup MB/s | backup CPU s | repository after 1st backup, MB | mutated backup: new plaintext MB | mutated backup: added to repository, MB (% of input) | restore MB/s | peak RSS backup MiB | load |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    } | out
}

# study_row NAME LABEL [init args...]: a fresh repository with these init
# arguments: first backup, restore, then the mutated input backed up second.
study_row() {
    local name=$1 label=$2 B=$INPUT_BYTES repo=$WORK/lb-study
    shift 2
    STUDY_INIT=("$@")
    prep_study() { lb_init "$WORK/lb-study" "${STUDY_INIT[@]}"; }
    log "== $name"
    best_of "$RUNS" "$name-backup" prep_study "$INPUT" "$WORK/study.json" \
        "$LB" --repo "$repo" --json backup stream --name bench
    local b=$B_SEC bcpu=$B_CPU rss=$B_RSS load=$B_LOAD size chunks
    chunks=$(json_num chunks "$WORK/study.json")
    size=$(dir_bytes "$repo")
    best_of "$RUNS" "$name-restore" noop /dev/null /dev/null \
        "$LB" --quiet --repo "$repo" restore stream latest
    local r=$B_SEC
    load="$load, $B_LOAD"
    best_of 1 "$name-mutated" noop "$MUTATED" "$WORK/study-mut.json" \
        "$LB" --repo "$repo" --json backup stream --name bench
    local added new
    added=$(($(dir_bytes "$repo") - size))
    new=$(json_num bytes_new "$WORK/study-mut.json")
    echo "| $label | $chunks ($(awk -v b="$B" -v c="$chunks" 'BEGIN { printf "%.0f KiB", b / c / 1024 }')) | $(mbps "$B" "$b") | $bcpu | $(mb "$size") | $(mb "$new") | $(mb "$added") ($(pct "$added" "$B")) | $(mbps "$B" "$r") | $(mib "$rss") | $load |" | out
}

mode_chunks() {
    generate_inputs "$SIZE_MB"
    study_header "Chunk-size study" "min = avg / 4, max = 8 × avg (max capped at 16 MiB); zstd level $ZLEVEL." "avg chunk"
    local avg label
    for avg in "${CHUNK_SIZES[@]}"; do
        label=$(awk -v a="$avg" 'BEGIN { if (a >= 1048576) printf "%g MiB", a / 1048576; else printf "%g KiB", a / 1024 }')
        study_row "chunks-$avg" "$label" --chunk-avg "$avg"
    done
    echo | out
}

mode_levels() {
    generate_inputs "$SIZE_MB"
    study_header "zstd level study" "Default chunk sizes; \`init --zstd-level N\`." "zstd level"
    local ZLEVEL # lb_init reads it: dynamic scope
    for ZLEVEL in "${LEVELS[@]}"; do
        study_row "level-$ZLEVEL" "$ZLEVEL"
    done
    echo | out
}

# ------------------------------------------------------------------ RSS of a long stream

mode_rss() {
    local repo=$WORK/lb-rss bytes=$((RSS_SIZE_MB * 1024 * 1024))
    lb_init "$repo"
    log "== rss: dumpgen --size ${RSS_SIZE_MB}M | lifeboat backup stream"
    # The generator writes into a FIFO that lifeboat reads as its stdin, so
    # /usr/bin/time measures lifeboat alone and no file is staged.
    local fifo=$WORK/rss.fifo
    rm -f -- "$fifo"
    mkfifo "$fifo"
    "$GEN" --size "${RSS_SIZE_MB}M" --seed "$SEED" > "$fifo" &
    local gen_pid=$!
    timed lifeboat-rss "$fifo" "$WORK/rss.json" "$LB" --repo "$repo" --json backup stream --name rss
    wait "$gen_pid"
    local lb_t=$T_SEC lb_rss=$T_RSS lb_load="$T_LOAD0–$T_LOAD1"
    rm -rf -- "$repo"
    {
        echo "## Peak RSS of a long stream backup: $RSS_SIZE_MB MiB generated and piped straight into \`backup stream\`"
        echo
        echo "| tool | seconds | MB/s | peak RSS MiB | target | load |"
        echo "|---|---:|---:|---:|---|---|"
        echo "| lifeboat | $lb_t | $(mbps "$bytes" "$lb_t") | $(mib "$lb_rss") | ≤ 128 MiB: $( ((lb_rss <= 131072)) && echo met || echo "NOT met") | $lb_load |"
    } | out
    if [[ ${BENCH_RSS_RESTIC:-0} == 1 ]]; then
        local rr=$WORK/restic-rss
        restic_init "$rr"
        "$GEN" --size "${RSS_SIZE_MB}M" --seed "$SEED" > "$fifo" &
        gen_pid=$!
        timed restic-rss "$fifo" /dev/null restic --repo "$rr" backup --stdin --stdin-filename rss.dump --compression auto --quiet
        wait "$gen_pid"
        echo "| restic | $T_SEC | $(mbps "$bytes" "$T_SEC") | $(mib "$T_RSS") | | $T_LOAD0–$T_LOAD1 |" | out
        rm -rf -- "$rr"
    fi
    rm -f -- "$fifo"
    echo | out
}

header
for m in "${MODES[@]}"; do
    "mode_$m"
done
echo "- load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | out
echo "- per-run raw timings: $(basename "$RAW")" | out
log "results: $RESULTS"
