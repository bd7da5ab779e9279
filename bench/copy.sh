#!/usr/bin/env bash
# `lifeboat copy` against `restic copy` (issue 19): one stream of SIZE MiB
# (half random, half base64 text: compressible like a dump) backed up into a
# source repository, then copied into
#   - a Lifeboat target made with `init --copy-params-from` (same ids),
#   - a Lifeboat target of its own (re-chunked),
#   - a restic target made with `init --copy-chunker-params`,
# first in full, then again after a second backup with 1 % of the stream
# changed (incremental). Between local directories, and into moto's S3 when
# BENCH_S3_ENDPOINT (e.g. http://127.0.0.1:5000, started by scripts/test.sh)
# is set. Wall time per copy and bytes the target grew. docs/regions/copy.md.
#
#   bench/copy.sh                       SIZE=256 (MiB)
#   SIZE=64 bench/copy.sh               a quick look
#   BENCH_S3_ENDPOINT=http://127.0.0.1:5000 bench/copy.sh
set -euo pipefail
export LC_ALL=C
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SIZE=${SIZE:-256}
S3=${BENCH_S3_ENDPOINT:-}
export LIFEBOAT_PASSWORD=bench-password-copy LIFEBOAT_TO_PASSWORD=bench-password-copy \
    LIFEBOAT_FROM_PASSWORD=bench-password-copy RESTIC_PASSWORD=bench-password-copy \
    RESTIC_FROM_PASSWORD=bench-password-copy

log() { printf '[copy-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
command -v restic > /dev/null || { log "installing restic"; apt-get install -y -qq restic > /dev/null; }
LB=${LIFEBOAT_BIN:-$ROOT/target/release/lifeboat}
[[ -x $LB ]] || (cd "$ROOT" && cargo build --release -q -p lifeboat)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "generating ${SIZE} MiB"
half=$((SIZE * 1024 * 1024 / 2))
{ head -c "$half" /dev/urandom; head -c $((half * 3 / 4)) /dev/urandom | base64 -w 120; } > "$WORK/v1"
python3 - "$WORK/v1" "$WORK/v2" << 'EOF'
import random, sys
data = bytearray(open(sys.argv[1], 'rb').read())
rng = random.Random(7)
for _ in range(8):  # 1 % of the bytes, in 8 places
    at = rng.randrange(0, len(data) - len(data) // 800)
    data[at:at + len(data) // 800] = rng.randbytes(len(data) // 800)
open(sys.argv[2], 'wb').write(data)
EOF

secs() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
size_of() { # a local directory, or an s3 prefix (through the S3 API: skipped)
    if [[ -d $1 ]]; then du -sb "$1" | cut -f1; else echo "-"; fi
}

S3_CFG=$WORK/s3.yaml
if [[ -n $S3 ]]; then
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
    bucket=lifeboat-copy-bench-$$
    curl -fsS -X PUT "$S3/$bucket" > /dev/null
    printf 'repository:\n  url: %s\n  s3:\n    endpoint: %s\n    region: us-east-1\n    allow_http: true\n' \
        "$WORK/lb-src" "$S3" > "$S3_CFG"
fi

log "source repositories and the first backup"
"$LB" --repo "$WORK/lb-src" init -q
"$LB" --repo "$WORK/lb-src" -q backup stream --name dump < "$WORK/v1" > /dev/null
restic -q -r "$WORK/rs-src" init > /dev/null
restic -q -r "$WORK/rs-src" backup --stdin --stdin-filename dump < "$WORK/v1" > /dev/null

targets=("$WORK/lb-same" "$WORK/lb-own")
if [[ -n $S3 ]]; then targets+=("s3://$bucket/same" "s3://$bucket/own"); fi
lbcmd() { if [[ -n $S3 ]]; then "$LB" --config "$S3_CFG" "$@"; else "$LB" "$@"; fi; }
for t in "${targets[@]}"; do
    case $t in
        *same) lbcmd --repo "$t" init -q --copy-params-from "$WORK/lb-src" > /dev/null ;;
        *) lbcmd --repo "$t" init -q > /dev/null ;;
    esac
done
rtargets=("$WORK/rs-tgt")
if [[ -n $S3 ]]; then rtargets+=("s3:$S3/$bucket/restic"); fi
for t in "${rtargets[@]}"; do
    restic -q -r "$t" init --from-repo "$WORK/rs-src" --copy-chunker-params > /dev/null
done

printf '%-8s %-34s %10s %10s\n' round target seconds target_bytes
round() {
    local r=$1
    for t in "${targets[@]}"; do
        s=$(secs lbcmd --repo "$WORK/lb-src" -q copy --to "$t")
        printf '%-8s %-34s %10.2f %10s\n' "$r" "lifeboat ${t##*/} ${t%%:*}" "$s" "$(size_of "$t")"
    done
    for t in "${rtargets[@]}"; do
        s=$(secs restic -q -r "$t" copy --from-repo "$WORK/rs-src")
        printf '%-8s %-34s %10.2f %10s\n' "$r" "restic ${t%%:*}" "$s" "$(size_of "$t")"
    done
}
round full
"$LB" --repo "$WORK/lb-src" -q backup stream --name dump < "$WORK/v2" > /dev/null
restic -q -r "$WORK/rs-src" backup --stdin --stdin-filename dump < "$WORK/v2" > /dev/null
round +1%
