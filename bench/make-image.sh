#!/usr/bin/env bash
# make-image.sh OUT [SIZE_GIB=4] [DATA_GIB=2.5]
#
# Makes a realistic raw disk image for the benchmarks: a sparse file of SIZE_GIB GiB
# holding an ext4 file system (built with `mkfs.ext4 -d`, no mount needed) filled with
# about DATA_GIB GiB of real files from this machine: executables, shared libraries,
# Rust toolchains, headers, docs, already-compressed files (.gz, .jar, .crate), package
# databases.
#
# The files are copied once into a staging folder, cached under
#   ${TRESOR_BENCH_CACHE:-/var/tmp/tresor-bench}/staging-<DATA bytes>
# so that reruns only run mkfs (delete that folder to rebuild it). Sources are walked in
# sorted order with fixed shares per source; no symlink is followed (symlinks are copied
# as symlinks), special files and unreadable files are skipped. The file system gets a
# fixed UUID, hash seed and time stamp, so the same staging folder gives the same image.
#
# Prints the image's size, allocated bytes and the number of all-zero 4 MiB regions.
set -euo pipefail

usage() {
    echo "usage: $0 OUT [SIZE_GIB=4] [DATA_GIB=2.5]" >&2
    exit 2
}
[[ $# -ge 1 && $# -le 3 ]] || usage
OUT=$1
SIZE_GIB=${2:-4}
DATA_GIB=${3:-2.5}
CACHE=${TRESOR_BENCH_CACHE:-/var/tmp/tresor-bench}
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3

die() {
    echo "make-image: error: $*" >&2
    exit 1
}
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
command -v "$PY" >/dev/null || die "python3 not found"

# GiB (decimals allowed) -> bytes, rounded down to a whole MiB.
to_bytes() {
    awk -v g="$1" 'BEGIN { if (g !~ /^[0-9]+(\.[0-9]+)?$/ || g <= 0) exit 1;
                           printf "%.0f\n", int(g * 1024) * 1048576 }' ||
        die "not a positive number of GiB: $1"
}
SIZE=$(to_bytes "$SIZE_GIB")
DATA=$(to_bytes "$DATA_GIB")
((DATA < SIZE * 9 / 10)) || die "DATA_GIB ($DATA_GIB) must be well below SIZE_GIB ($SIZE_GIB): ext4 needs room for its metadata"

STAGING=$CACHE/staging-$DATA
mkdir -p "$CACHE"

if [[ -f $STAGING/.complete ]]; then
    echo "make-image: using cached staging folder $STAGING ($(du -sh --exclude=.complete "$STAGING" | cut -f1))"
else
    echo "make-image: copying ~$DATA_GIB GiB of files from this machine into $STAGING (once; cached for reruns)"
    rm -rf "$STAGING" "$STAGING.partial"
    mkdir -p "$STAGING.partial"
    # Shares of DATA per source, in order. A source that is missing or smaller than its
    # share passes the rest on to the next one; a final pass over all sources fills any
    # shortfall. Later sources skip files an earlier one already took.
    "$PY" - "$STAGING.partial" "$DATA" <<'EOF'
import os, shutil, stat, sys

dest_root, target = sys.argv[1], int(sys.argv[2])
SOURCES = [
    ("/usr/bin", 0.06),                   # executables
    ("/usr/sbin", 0.005),
    ("/usr/lib/x86_64-linux-gnu", 0.20),  # shared libraries
    ("/usr/lib/jvm", 0.06),               # .jar = zip, already compressed
    ("/usr/lib/llvm-14", 0.06),
    ("/usr/lib/gcc", 0.04),
    ("/usr/lib/python3", 0.015),          # text (.py) and .pyc
    ("/usr/lib/python3.11", 0.015),
    ("/usr/lib/google-cloud-sdk", 0.05),
    ("/usr/lib", 0.04),
    ("/usr/share", 0.13),                 # docs (.gz), locales, icons, text
    ("/usr/include", 0.03),               # C headers (text)
    ("/usr/local", 0.02),
    ("/var/lib", 0.03),                   # dpkg/apt databases
    ("/root/.cargo/registry", 0.04),      # .crate (gzip) and Rust sources
    ("/root/.rustup", 0.20),              # rlibs, .so, compilers, HTML docs
]
MAX_FILE = 256 << 20  # one huge file would dominate the mix
taken = set()
total = 0
count = 0
links = 0
per_source = {}
# Keep the copy out of the tree it reads, whatever the cache path.
skip_prefixes = [os.path.realpath(dest_root)]

def walk(src):
    """Regular files and symlinks under src, sorted, never following a symlink."""
    try:
        st = os.lstat(src)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [src]
    while stack:
        d = stack.pop()
        if any(d == p or d.startswith(p + "/") for p in skip_prefixes):
            continue
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        subdirs = []
        for n in names:
            p = os.path.join(d, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(p)
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                yield p, st
        stack.extend(reversed(subdirs))

def copy(p, st):
    global total, count, links
    dst = os.path.join(dest_root, p.lstrip("/"))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(p), dst)  # copied as a link, never followed
        links += 1
        return 0
    try:
        shutil.copy2(p, dst, follow_symlinks=False)
    except OSError:
        try:
            os.unlink(dst)
        except OSError:
            pass
        return None
    size = os.lstat(dst).st_size
    total += size
    count += 1
    return size

def take(src, quota):
    got = 0
    for p, st in walk(src):
        if got >= quota or total >= target:
            break
        if p in taken:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_size > MAX_FILE or
                                          st.st_size > target - total + (1 << 20)):
            continue
        taken.add(p)
        try:
            n = copy(p, st)
        except OSError:
            n = None
        if n:
            got += n
    per_source[src] = per_source.get(src, 0) + got
    return got

carry = 0.0
for src, share in SOURCES:
    quota = share * target + carry
    carry = max(0.0, quota - take(src, quota))
for src, _ in SOURCES:  # fill any shortfall
    if total >= target:
        break
    take(src, target - total)

for src, _ in SOURCES:
    if per_source.get(src):
        print(f"  {per_source[src] / 2**20:9.1f} MiB  {src}")
print(f"  {total / 2**20:9.1f} MiB  total: {count} files, {links} symlinks")
if total < target * 0.9:
    sys.exit(f"only {total} bytes of files found, wanted {target}")
EOF
    # Fixed times, so that mkfs sees the same tree each time: directory mtimes fixed,
    # and every access time set in the future (2100), which relatime never updates on
    # read (mkfs copies atime into the image too).
    find "$STAGING.partial" -type d -exec touch -h -m -d @1700000000 {} +
    find "$STAGING.partial" -exec touch -h -a -d @4102444800 {} +
    touch "$STAGING.partial/.complete"
    mv "$STAGING.partial" "$STAGING"
fi

rm -f "$OUT"
truncate -s "$SIZE" "$OUT"
echo "make-image: mkfs.ext4 -d on a $SIZE_GIB GiB sparse file: $OUT"
start=$(date +%s.%N)
# Fixed UUID, hash seed and time: repeatable. One inode per 8 KiB: the toolchains hold
# many small files. E2FSPROGS_FAKE_TIME fixes the superblock times.
E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -F -q -i 8192 -L tresor-bench \
    -U 6b1e3c52-2f4d-4c8a-9a55-7d0e1f2a3b4c \
    -E hash_seed=1f0c9e2a-5b7d-4e3f-8a6b-2c4d6e8f0a1b,root_owner=0:0 \
    -d "$STAGING" "$OUT" ||
    die "mkfs.ext4 failed (too many files for the inode count? see above)"
echo "make-image: mkfs took $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s"

# Stats: all-zero 4 MiB regions (holes are skipped with SEEK_DATA, so this is cheap).
"$PY" - "$OUT" <<'EOF'
import os, sys
path = sys.argv[1]
R = 4 << 20
zero = bytes(R)
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
alloc = os.fstat(fd).st_blocks * 512
regions = (size + R - 1) // R
zeros = 0
for i in range(regions):
    off = i * R
    n = min(R, size - off)
    try:
        data_at = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:          # ENXIO: only a hole from here on
        data_at = size
    if data_at >= off + n:
        zeros += 1
        continue
    if os.pread(fd, n, off) == zero[:n]:
        zeros += 1
os.close(fd)
print(f"make-image: {path}: {size / 2**30:.2f} GiB, {alloc / 2**30:.2f} GiB allocated, "
      f"{zeros} of {regions} 4-MiB regions all-zero, "
      f"{(regions - zeros) * R / 2**30:.2f} GiB in non-zero regions")
EOF
