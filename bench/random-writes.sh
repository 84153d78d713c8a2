#!/usr/bin/env bash
# random-writes.sh IMAGE TOTAL_MIB [BLOCK_KIB=64] [SEED=1]
#
# Simulates a guest writing to its disk: writes TOTAL_MIB MiB of incompressible random
# data (from /dev/urandom) as BLOCK_KIB-KiB writes at distinct, random, BLOCK-aligned
# offsets inside IMAGE (the file keeps its size; nothing is truncated), then fsyncs.
#
# The offsets depend only on SEED, the image size and the block size, so a rerun with
# the same arguments touches the same places (with new random bytes).
#
# Writes IMAGE.dirty: the touched extents, one "OFFSET LENGTH" line per write (decimal
# bytes, sorted by offset, after one "#" comment line), the text form that
# `tresor repo backup --dirty-extents FILE` reads. The file is replaced on each run: it
# lists this run's writes only.
set -euo pipefail

usage() {
    echo "usage: $0 IMAGE TOTAL_MIB [BLOCK_KIB=64] [SEED=1]" >&2
    exit 2
}
[[ $# -ge 2 && $# -le 4 ]] || usage
IMAGE=$1
TOTAL_MIB=$2
BLOCK_KIB=${3:-64}
SEED=${4:-1}
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3

die() {
    echo "random-writes: error: $*" >&2
    exit 1
}
[[ -f $IMAGE ]] || die "no such image file: $IMAGE"
[[ $TOTAL_MIB =~ ^[0-9]+$ && $TOTAL_MIB -gt 0 ]] || die "TOTAL_MIB must be a positive integer: $TOTAL_MIB"
[[ $BLOCK_KIB =~ ^[0-9]+$ && $BLOCK_KIB -gt 0 ]] || die "BLOCK_KIB must be a positive integer: $BLOCK_KIB"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer: $SEED"

# The choice of blocks and the writing are in random_writes.py, which bench/libvirt.sh
# uses too (the same writes into a running domain's disk).
exec "$PY" "$(dirname "${BASH_SOURCE[0]}")/random_writes.py" file "$IMAGE" "$TOTAL_MIB" "$BLOCK_KIB" "$SEED"
