#!/usr/bin/env bash
# Per-segment cost of `lifeboat wal push` as PostgreSQL's archiver runs it:
# one process per 16 MiB segment, in a row, into a local repository opened
# with a key file (docs/physical.md, "Cost per segment").
#
#   bench/wal-push.sh [N]      (N pushes per kind, default 200)
#
# LIFEBOAT_BIN: the binary (default target/release/lifeboat). WORK: where
# to put the repository and the segments (default a temporary directory).
set -euo pipefail
n=${1:-200}
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
work=${WORK:-$(mktemp -d)}
trap 'rm -rf "$work"' EXIT
export LIFEBOAT_REPO=$work/repo
unset LIFEBOAT_PASSWORD LIFEBOAT_CONFIG LIFEBOAT_KEY_FILE LIFEBOAT_PASSWORD_FILE
LIFEBOAT_PASSWORD='bench passphrase, long enough' "$bin" -q init >/dev/null
LIFEBOAT_PASSWORD='bench passphrase, long enough' "$bin" -q key add --new-key-file "$work/key" >/dev/null
mkdir -p "$work/seg"
head -c $((16 << 20)) /dev/urandom >"$work/random"
head -c $((16 << 20)) /dev/zero >"$work/zero"

# seconds for $1 pushes of $2 (a file) on timeline $3, one process each
run() {
    local count=$1 file=$2 tl=$3 start end i name
    start=$(date +%s.%N)
    for ((i = 1; i <= count; i++)); do
        name=$(printf '%08X%08X%08X' "$tl" $((i / 256)) $((i % 256)))
        ln -f "$file" "$work/seg/$name"
        "$bin" --key-file "$work/key" wal push "$work/seg/$name"
        rm -f "$work/seg/$name"
    done
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

# process start + repository opening + one listing, no data: a fetch of a
# name that is not there (exit 3)
start_only() {
    local count=$1 start end i
    start=$(date +%s.%N)
    for ((i = 1; i <= count; i++)); do
        "$bin" --key-file "$work/key" wal fetch 0000000F0000000000000001 "$work/none" 2>/dev/null || true
    done
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

report() { printf '%-46s %4d  %8.2f s  %7.1f ms/segment  %6.1f segments/s\n' "$1" "$2" "$3" "$(echo "$3 * 1000 / $2" | bc -l)" "$(echo "$2 / $3" | bc -l)"; }

version=$("$bin" --version)
echo "# $version, $(nproc) cores, $(date -u +%FT%TZ)"
report "process start + open (fetch of a missing name)" "$n" "$(start_only "$n")"
report "push 16 MiB random (stored uncompressed)" "$n" "$(run "$n" "$work/random" 1)"
report "push 16 MiB zeros (compressed)" "$n" "$(run "$n" "$work/zero" 2)"
stored=$(du -sb "$work/repo/wal" | cut -f1)
echo "# wal/ holds $stored bytes for $((2 * n)) segments"
# the same with a passphrase (Argon2id per push), fewer rounds
m=$(( n < 20 ? n : 20 ))
start=$(date +%s.%N)
for ((i = 1; i <= m; i++)); do
    name=$(printf '%08X%08X%08X' 3 0 "$i")
    ln -f "$work/zero" "$work/seg/$name"
    LIFEBOAT_PASSWORD='bench passphrase, long enough' "$bin" wal push "$work/seg/$name" 2>/dev/null
    rm -f "$work/seg/$name"
done
end=$(date +%s.%N)
report "push 16 MiB zeros with a passphrase" "$m" "$(echo "$end - $start" | bc -l)"
