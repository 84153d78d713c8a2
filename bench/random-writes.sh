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

"$PY" - "$IMAGE" "$TOTAL_MIB" "$BLOCK_KIB" "$SEED" <<'EOF'
import os, random, sys, time

image, total_mib, block_kib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bs = block_kib * 1024
total = total_mib * 1024 * 1024
if total % bs:
    sys.exit(f"random-writes: error: {total_mib} MiB is not a whole number of {block_kib} KiB blocks")
n = total // bs
size = os.path.getsize(image)
nblocks = size // bs
if n > nblocks:
    sys.exit(f"random-writes: error: {n} distinct {block_kib} KiB blocks do not fit in a {size}-byte image")

rng = random.Random(seed)
blocks = rng.sample(range(nblocks), n)  # distinct: exactly TOTAL_MIB MiB change
start = time.monotonic()
fd = os.open(image, os.O_WRONLY)  # no O_TRUNC, no O_CREAT: the image keeps its size
try:
    with open("/dev/urandom", "rb", buffering=0) as ur:
        for b in blocks:
            data = ur.read(bs)
            if os.pwrite(fd, data, b * bs) != bs:
                sys.exit("random-writes: error: short write")
    os.fsync(fd)
finally:
    os.close(fd)
elapsed = time.monotonic() - start
assert os.path.getsize(image) == size

dirty = image + ".dirty"
tmp = dirty + ".tmp"
with open(tmp, "w") as f:
    f.write(f"# random-writes.sh: {n} writes of {bs} bytes, seed {seed}: OFFSET LENGTH (bytes)\n")
    for b in sorted(blocks):
        f.write(f"{b * bs} {bs}\n")
os.replace(tmp, dirty)

offs = sorted(blocks)
print(f"random-writes: wrote {n} x {block_kib} KiB = {total_mib} MiB of /dev/urandom data "
      f"at random {block_kib} KiB-aligned offsets of {image} "
      f"({size / 2**30:.2f} GiB, seed {seed}) in {elapsed:.2f} s; "
      f"offsets {offs[0] * bs} .. {offs[-1] * bs}; extents listed in {dirty}")
EOF
