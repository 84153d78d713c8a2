#!/usr/bin/env bash
# running-vm.sh: backups of a running VM, against the full read restic needs, in one run.
#
#   bench/running-vm.sh              # builds target/release/tresor and the test guest
#   KEEP=1 bench/running-vm.sh       # keep the images and repositories afterwards
#
# The VM: the test guest (Debian's cloud kernel, a busybox initramfs, qemu-ga; under
# TCG) with a 4 GiB qcow2 disk holding an ext4 file system with ~2.5 GiB of this
# machine's files (bench/make-image.sh), mounted read-write in the guest. Steps:
#   1. full backup of the running VM (tresor repo backup --vm-qmp --guest-agent)
#   2. 1% of the disk (41 MiB) rewritten in random 64 KiB blocks of random data
#      (qemu-io through a second QMP monitor, then a flush)
#   3. incremental backup: time, bytes read, bytes stored against bytes changed
#   4. restic 0.14 backing up the same image's raw file: the full read a file-level
#      tool needs for any backup of the disk
# Each backup prints how long the guest's file systems stayed frozen.
# The page cache is dropped before each timed step (falls back to warm, and says so).
#
# Environment: TRESOR_BIN (default: cargo build --release), TRESOR_BENCH_DIR (work folder,
# default /var/tmp/tresor-bench/running-vm), TRESOR_BENCH_CACHE (make-image's cache),
# IMAGE_GIB (4), DATA_GIB (2.5), CHANGE_PERCENT (1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${TRESOR_BENCH_DIR:-/var/tmp/tresor-bench/running-vm}
IMAGE_GIB=${IMAGE_GIB:-4}
DATA_GIB=${DATA_GIB:-2.5}
CHANGE_PERCENT=${CHANGE_PERCENT:-1}
KEEP=${KEEP:-0}
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
export TRESOR_PASSWORD=secret RESTIC_PASSWORD=secret RESTIC_CACHE_DIR=$WORK/restic-cache

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf 'running-vm: error: %s\n' "$*" >&2
    exit 1
}
QEMU_PID=
cleanup() {
    local rc=$?
    [[ -n $QEMU_PID ]] && kill "$QEMU_PID" 2>/dev/null || true
    if [[ $KEEP != 1 ]]; then
        rm -rf "$WORK/disk.qcow2" "$WORK/tresor-repo" "$WORK/restic-repo" "$RESTIC_CACHE_DIR" \
            "$WORK/scratch" "$WORK/writes"
    fi
    exit "$rc"
}
trap cleanup EXIT

command -v restic >/dev/null || die "restic not found (apt-get install restic)"
command -v qemu-system-x86_64 >/dev/null || die "QEMU not found: run scripts/install-deps.sh as root"
mkdir -p "$WORK" "$WORK/scratch"
rm -rf "$WORK/tresor-repo" "$WORK/restic-repo" "$RESTIC_CACHE_DIR" "$WORK/writes"

CACHE_NOTE="cold cache (page cache dropped before each timed step)"
drop_caches() { sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; }
drop_caches || CACHE_NOTE="warm cache (the page cache cannot be dropped here)"

# elapsed CMD...: runs CMD, output into $WORK/last.out/.err; sets SEC (wall clock).
elapsed() {
    local t0 t1
    drop_caches || true
    t0=$(date +%s.%N)
    "$@" >"$WORK/last.out" 2>"$WORK/last.err" || {
        cat "$WORK/last.err" >&2
        die "failed: $*"
    }
    t1=$(date +%s.%N)
    SEC=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# ------------------------------------------------------------------------- build
if [[ -n ${TRESOR_BIN:-} ]]; then
    TRESOR=$TRESOR_BIN
else
    say "building tresor (release)"
    cargo build -q --manifest-path "$ROOT/Cargo.toml" --release -p tresor
    TRESOR=$ROOT/target/release/tresor
fi
say "building the test guest"
eval "$(cargo run -q --manifest-path "$ROOT/Cargo.toml" -p tresor-testguest --example guest-image)"

# ------------------------------------------------------------------------- the disk
if [[ ! -f $WORK/disk.raw ]]; then
    say "making the ${IMAGE_GIB} GiB ext4 image with ${DATA_GIB} GiB of files"
    "$HERE/make-image.sh" "$WORK/disk.raw" "$IMAGE_GIB" "$DATA_GIB" >/dev/null
fi
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
SIZE=$(stat -c %s "$WORK/disk.raw")

# ------------------------------------------------------------------------- the VM
say "starting the VM (TCG)"
rm -f "$WORK"/*.sock "$WORK/serial.log"
bios=()
[[ -f /usr/share/qemu/qboot.rom ]] && bios=(-bios /usr/share/qemu/qboot.rom)
qemu-system-x86_64 -name bench-vm -machine q35 -accel tcg -m 512 -smp 1 -nodefaults -display none -no-reboot \
    "${bios[@]}" -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 cryptomgr.notests tresor.mode=writer tresor.pause=3600000 tresor.agent=1" \
    -serial "file:$WORK/serial.log" \
    -blockdev "driver=file,filename=$WORK/disk.qcow2,node-name=disk0-file" \
    -blockdev "driver=qcow2,file=disk0-file,node-name=disk0" \
    -device virtio-blk-pci,drive=disk0,id=vda \
    -qmp "unix:$WORK/tresor.sock,server=on,wait=off" \
    -qmp "unix:$WORK/bench.sock,server=on,wait=off" \
    -chardev "socket,path=$WORK/qga.sock,server=on,wait=off,id=qga0" \
    -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
    </dev/null >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
for _ in $(seq 600); do
    grep -q "TRESOR-GUEST: wrote 0" "$WORK/serial.log" 2>/dev/null && break
    kill -0 "$QEMU_PID" 2>/dev/null || die "QEMU exited: $(cat "$WORK/qemu.log")"
    sleep 0.1
done
grep -q "TRESOR-GUEST: agent started" "$WORK/serial.log" || die "the guest did not start its agent: $(tail "$WORK/serial.log")"

"$TRESOR" repo init "$WORK/tresor-repo" >/dev/null
VM=(--vm-qmp "$WORK/tresor.sock" --guest-agent "$WORK/qga.sock" --scratch-dir "$WORK/scratch")
frozen_ms() { grep -o 'frozen for [0-9]* ms' "$WORK/last.out" | grep -o '[0-9]*' || echo "-"; }
read_bytes() { sed -n 's/.*: read \(.*\) in .*/\1/p' "$WORK/last.out"; }

say "full backup of the running VM"
elapsed "$TRESOR" repo backup "$WORK/tresor-repo" "${VM[@]}"
FULL_SEC=$SEC FULL_FROZEN=$(frozen_ms) FULL_READ=$(read_bytes)
FULL_LINE=$(grep 'point of' "$WORK/last.out")
STORED_FULL=$(du -sb "$WORK/tresor-repo" | cut -f1)

# ------------------------------------------------------------------------- writes
BLOCKS=$((SIZE / 65536 * CHANGE_PERCENT / 100))
say "writing $BLOCKS random 64 KiB blocks of random data ($((BLOCKS * 64 / 1024)) MiB, ${CHANGE_PERCENT}% of the disk)"
mkdir -p "$WORK/writes"
"$PY" - "$WORK/bench.sock" "$WORK/writes" "$BLOCKS" "$SIZE" <<'EOF'
import json, os, random, socket, sys
sock_path, folder, blocks, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(1)
s = socket.socket(socket.AF_UNIX)
s.connect(sock_path)
f = s.makefile("rw")
def call(cmd, args=None):
    msg = {"execute": cmd}
    if args is not None:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r: return r["return"]
        if "error" in r: raise SystemExit(f"{cmd}: {r['error']}")
json.loads(f.readline())  # greeting
call("qmp_capabilities")
offsets = rng.sample(range(size // 65536), blocks)
for i, block in enumerate(offsets):
    path = os.path.join(folder, f"w{i}")
    with open(path, "wb") as out:
        out.write(os.urandom(65536))
    out = call("human-monitor-command", {"command-line": f'qemu-io -d /machine/peripheral/vda/virtio-backend "write -s {path} {block * 65536} 64k"'})
    if out.strip():
        raise SystemExit(f"qemu-io: {out}")
    os.remove(path)
call("human-monitor-command", {"command-line": 'qemu-io -d /machine/peripheral/vda/virtio-backend "flush"'})
EOF
CHANGED=$((BLOCKS * 65536))

say "incremental backup of the running VM"
elapsed "$TRESOR" repo backup "$WORK/tresor-repo" "${VM[@]}"
INC_SEC=$SEC INC_FROZEN=$(frozen_ms) INC_READ=$(read_bytes)
INC_LINE=$(grep 'point of' "$WORK/last.out")
STORED_INC=$(($(du -sb "$WORK/tresor-repo" | cut -f1) - STORED_FULL))

# ------------------------------------------------------------------------- restic
say "restic: backup of the same disk image (a full read)"
restic -r "$WORK/restic-repo" init >/dev/null
elapsed restic -r "$WORK/restic-repo" backup "$WORK/disk.raw"
RESTIC_SEC=$SEC

kill "$QEMU_PID" 2>/dev/null || true
wait "$QEMU_PID" 2>/dev/null || true
QEMU_PID=

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
{
    echo
    echo "Running VM: ${IMAGE_GIB} GiB qcow2 disk, ext4 with ${DATA_GIB} GiB of files, guest under TCG; $CACHE_NOTE"
    echo "  $FULL_LINE"
    echo "  $INC_LINE"
    printf '%-44s %12s\n' "step" "figure"
    printf '%-44s %10s s   (read %s, frozen %s ms)\n' "tresor full backup of the running VM" "$FULL_SEC" "$FULL_READ" "$FULL_FROZEN"
    printf '%-44s %10s s   (read %s, frozen %s ms)\n' "tresor incremental after ${CHANGE_PERCENT}% changed" "$INC_SEC" "$INC_READ" "$INC_FROZEN"
    printf '%-44s %10s s\n' "restic backup of the disk image (full read)" "$RESTIC_SEC"
    printf '%-44s %10sx  (target >= 20x)\n' "restic full read / tresor incremental" "$(ratio "$RESTIC_SEC" "$INC_SEC")"
    printf '%-44s %12s\n' "bytes changed" "$(mib "$CHANGED")"
    printf '%-44s %12s   (%sx the change; target <= 1.5x)\n' "tresor repository growth, incremental" "$(mib "$STORED_INC")" "$(ratio "$STORED_INC" "$CHANGED")"
} | tee "$WORK/summary.txt"
