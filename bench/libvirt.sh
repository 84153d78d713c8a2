#!/usr/bin/env bash
# libvirt.sh: Tresor against virtnbdbackup, backing up one running libvirt domain, in
# one run, on the disk and writes of bench/compare.sh.
#
#   bench/libvirt.sh                    # builds target/release/tresor, runs everything
#   TRESOR_BIN=/path/to/tresor bench/libvirt.sh
#   KEEP=1 bench/libvirt.sh             # keep the domain's disk and both backups
#
# The domains: two alike, one per tool (virtnbdbackup refuses a domain that has
# checkpoints of another tool's), both running all along: the test guest (Debian's
# cloud kernel, a busybox initramfs, qemu-ga; TCG) with one 4 GiB qcow2 disk (vda), a
# copy of one image made by bench/make-image.sh (ext4 with ~2.5 GiB of this machine's
# files), not mounted by the guest. Steps, each timed alone (GNU time):
#   1. tresor full backup:  tresor repo backup REPO --libvirt-domain DOMAIN_T
#   2. virtnbdbackup full:  virtnbdbackup -d DOMAIN_V -l full -o DIR
#   3. guest writes: bench/random_writes.py, the writes of compare.sh's incremental step
#      (40 MiB of random 64 KiB writes, seed 1: the same offsets in both), into each
#      running disk through its QEMU
#   4. tresor incremental (the same command: it follows the newest point, reading what
#      libvirt's checkpoint bitmap marks)
#   5. virtnbdbackup incremental: virtnbdbackup -d DOMAIN_V -l inc -o DIR
#   6. check: the domains stopped, Tresor's incremental point restored and compared with
#      its domain's disk (qemu-img compare)
# Both tools use libvirt's backup API in pull mode with checkpoints, and the guest agent
# to freeze (nothing is mounted, so the freeze is short for both). Prints wall time and
# bytes stored of each, and the ratios against the goals of issue 15: full >= 2x faster
# than virtnbdbackup storing less than a third of its bytes, incremental >= 3x faster.
#
# Needs root, libvirt (scripts/install-deps.sh), virtnbdbackup (apt-get install -y
# --no-install-recommends virtnbdbackup; Debian 12 has 1.9.15), GNU time. Starts
# virtlogd and libvirtd when no libvirtd answers (and stops what it started).
#
# Environment: TRESOR_BIN, TRESOR_BENCH_DIR (work folder, emptied; default
# /var/tmp/tresor-bench/libvirt), TRESOR_BENCH_CACHE (make-image's cache), BENCH_CACHE
# (cold: drop the page cache before each timed step, the default; warm), STEP_TIMEOUT
# (1200 s), IMAGE_GIB, DATA_GIB, INCR_MIB (4, 2.5, 40), KEEP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${TRESOR_BENCH_DIR:-/var/tmp/tresor-bench/libvirt}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
KEEP=${KEEP:-0}
BENCH_CACHE=${BENCH_CACHE:-cold}
IMAGE_GIB=${IMAGE_GIB:-4}
DATA_GIB=${DATA_GIB:-2.5}
INCR_MIB=${INCR_MIB:-40}
INCR_BLOCK_KIB=64
INCR_SEED=1
BENCH_NAME=libvirt
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

URI=qemu:///system
DOMAIN_T=tresor-bench-libvirt-t # backed up by tresor
DOMAIN_V=tresor-bench-libvirt-v # backed up by virtnbdbackup
IMAGES=/var/lib/libvirt/images/tresor-bench-libvirt # where libvirt's QEMU may read and write
DISK_T=$IMAGES/disk-t.qcow2
DISK_V=$IMAGES/disk-v.qcow2
LOGS=$WORK/logs
T_REPO=$WORK/tresor-repo
V_DIR=$WORK/virtnbdbackup
VIRSH=(virsh -q -c "$URI")

# ------------------------------------------------------------------------ libvirtd
STARTED_PIDS=() # daemons this run started, stopped at the end (libvirtd first)
libvirt_answers() { "${VIRSH[@]}" version >/dev/null 2>&1; }
start_libvirtd() {
    libvirt_answers && return 0
    local daemon pid_file
    for daemon in virtlogd libvirtd; do
        pid_file=/run/$daemon.pid
        if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then continue; fi
        say "starting $daemon -d"
        "$daemon" -d || die "$daemon -d failed"
        for _ in $(seq 100); do [[ -s $pid_file ]] && break; sleep 0.1; done
        [[ -s $pid_file ]] || die "$daemon started but wrote no $pid_file"
        STARTED_PIDS=("$(cat "$pid_file")" "${STARTED_PIDS[@]}")
    done
    for _ in $(seq 300); do libvirt_answers && return 0; sleep 0.1; done
    die "libvirtd started but $URI does not answer"
}

remove_domains() {
    local d
    for d in "$DOMAIN_T" "$DOMAIN_V"; do
        "${VIRSH[@]}" destroy "$d" >/dev/null 2>&1 || true
        "${VIRSH[@]}" undefine "$d" --checkpoints-metadata >/dev/null 2>&1 || true
    done
}

# ---------------------------------------------------------------------------- cleanup
cleanup() {
    local rc=$?
    if [[ -n $CUR_PID ]]; then
        kill -TERM "$CUR_PID" 2>/dev/null || true
        wait "$CUR_PID" 2>/dev/null || true
    fi
    if libvirt_answers; then remove_domains; fi
    if [[ $KEEP == 1 ]]; then
        say "KEEP=1: the disk is kept in $IMAGES, the backups in $WORK"
    else
        rm -rf "$IMAGES" "$T_REPO" "$V_DIR" "$WORK/disk.raw" "$WORK/restored.raw"
    fi
    local pid
    for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
    exit "$rc"
}
on_signal() {
    trap - INT TERM
    echo >&2
    say "interrupted: stopping" >&2
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

# ------------------------------------------------------------------------- preflight
[[ $(id -u) == 0 ]] || die "run as root (libvirt's system daemon, the domain's images, the page cache)"
[[ $WORK == /* && $WORK != / && $WORK != "$HOME" && $WORK != "$ROOT" ]] ||
    die "TRESOR_BENCH_DIR must be an absolute path of a folder of its own (it is emptied): $WORK"
command -v virtnbdbackup >/dev/null ||
    die "virtnbdbackup is not installed: apt-get install -y --no-install-recommends virtnbdbackup"
for tool in virsh virtlogd libvirtd qemu-img timeout mkfs.ext4 "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs QEMU and libvirt)"
done
"$PY" -c 'import libvirt, libvirt_qemu' 2>/dev/null ||
    die "python3-libvirt missing (virtnbdbackup depends on it): apt-get install -y python3-libvirt"
need_gnu_time
setup_cache

rm -rf "$WORK"
mkdir -p "$WORK" "$LOGS"
need_free_gib 16
find_tresor
"$TRESOR" repo backup --help 2>&1 | grep -q -e --libvirt-domain ||
    die "$TRESOR has no 'repo backup --libvirt-domain' (an older build?)"
TRESOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
[[ -z ${TRESOR_BIN:-} && -n $(git -C "$ROOT" status --porcelain -- crates 2>/dev/null) ]] &&
    TRESOR_REV+=" + uncommitted changes"
VNB_VER=$(virtnbdbackup --version 2>&1 | tail -n 1)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

say "building the test guest (tresor-testguest)"
guest_vars=$(cargo run -q --manifest-path "$ROOT/Cargo.toml" -p tresor-testguest --example guest-image) ||
    die "building the test guest failed (scripts/install-deps.sh installs its packages)"
eval "$guest_vars" # kernel=..., initrd=...

start_libvirtd
remove_domains
rm -rf "$IMAGES"
mkdir -p "$IMAGES"
say "work dir $WORK; $CACHE_NOTE"
say "tresor $TRESOR (commit $TRESOR_REV); virtnbdbackup $VNB_VER; libvirt $("${VIRSH[@]}" version --daemon 2>/dev/null | awk '/daemon/ { print $NF }')"
BUSY=$(calc "sprintf(\"%.0f\", 100 * $(machine_busy))")
((BUSY > 10)) && say "warning: the machine is busy ($BUSY% of a core used or stolen): timings will be noisy"

# ------------------------------------------------------------------------ the domain
say "making the disk: $IMAGE_GIB GiB, ~$DATA_GIB GiB of files (bench/make-image.sh), as qcow2"
timed make-image "$HERE/make-image.sh" "$WORK/disk.raw" "$IMAGE_GIB" "$DATA_GIB"
IMAGE_STATS=$(grep -E 'regions all-zero' "$LOGS/make-image.out" | sed 's/^make-image: [^:]*: //')
timed convert qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$DISK_T"
cp --sparse=always "$DISK_T" "$DISK_V"
SIZE=$(stat -c %s "$WORK/disk.raw")
rm -f "$WORK/disk.raw"
cp "$kernel" "$IMAGES/vmlinuz"
cp "$initrd" "$IMAGES/initrd.img"
say "disk: $IMAGE_STATS"

# domain_xml NAME DISK
domain_xml() {
    cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$IMAGES/vmlinuz</kernel><initrd>$IMAGES/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 cryptomgr.notests tresor.mode=idle tresor.agent=1</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$2'/><target dev='vda' bus='virtio'/></disk>
    <serial type='file'><source path='$IMAGES/$1.serial.log'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <video><model type='none'/></video><memballoon model='none'/>
  </devices>
</domain>
EOF
}
for d in "$DOMAIN_T:$DISK_T" "$DOMAIN_V:$DISK_V"; do
    domain_xml "${d%%:*}" "${d#*:}" >"$WORK/${d%%:*}.xml"
    "${VIRSH[@]}" define "$WORK/${d%%:*}.xml" >/dev/null
    "${VIRSH[@]}" start "${d%%:*}" >/dev/null
done
say "domains $DOMAIN_T and $DOMAIN_V started (TCG); waiting for their guest agents"
for d in "$DOMAIN_T" "$DOMAIN_V"; do
    for _ in $(seq 120); do
        "${VIRSH[@]}" qemu-agent-command "$d" '{"execute":"guest-ping"}' --timeout 2 >/dev/null 2>&1 && break
        sleep 1
    done
    "${VIRSH[@]}" qemu-agent-command "$d" '{"execute":"guest-ping"}' --timeout 5 >/dev/null ||
        die "the guest agent of $d did not answer within 120 s (serial log: $IMAGES/$d.serial.log)"
done

# vnb_data_bytes: bytes of virtnbdbackup's disk data files (vda.*.data), without the
# kernel, initrd, domain XML and logs it keeps beside them
vnb_data_bytes() { find "$V_DIR" -maxdepth 1 -name '*.data' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# ---------------------------------------------------------------------------- full
# A generated passphrase, as the vault service gives every host's repository: its key
# file opens without Argon2id (a chosen passphrase costs each run ~0.2 s to derive).
timed tresor-init "$TRESOR" repo init "$T_REPO" --generate-passphrase
TRESOR_PASSWORD=$(tail -n 1 "$LOGS/tresor-init.out")
export TRESOR_PASSWORD
say "tresor: full backup"
prepare "$DISK_T"
timed tresor-full "$TRESOR" repo backup "$T_REPO" --libvirt-domain "$DOMAIN_T"
T_FULL_SEC=$T_SEC
note_step tresor "repo backup --libvirt-domain (full)"
RP1=$(rp_id_from "$LOGS/tresor-full.out")
T_FULL_LINE=$(grep 'point of' "$LOGS/tresor-full.out" || true)
T_FULL_BYTES=$(bytes_of "$T_REPO")
say "  $(secs "$T_FULL_SEC"), repository $(mb "$T_FULL_BYTES"): $T_FULL_LINE"

say "virtnbdbackup: full backup"
prepare "$DISK_V"
timed vnb-full virtnbdbackup -d "$DOMAIN_V" -l full -o "$V_DIR"
V_FULL_SEC=$T_SEC
note_step vnb "virtnbdbackup -l full"
V_FULL_BYTES=$(bytes_of "$V_DIR")
V_FULL_DATA=$(vnb_data_bytes)
say "  $(secs "$V_FULL_SEC"), folder $(mb "$V_FULL_BYTES") (disk data $(mb "$V_FULL_DATA"))"

# ---------------------------------------------------------------------- guest writes
say "guest writes: $INCR_MIB MiB of random ${INCR_BLOCK_KIB} KiB writes into vda (bench/random_writes.py, seed $INCR_SEED)"
for d in "$DOMAIN_T" "$DOMAIN_V"; do
    "$PY" "$HERE/random_writes.py" libvirt "$URI" "$d" vda "$SIZE" "$INCR_MIB" "$INCR_BLOCK_KIB" "$INCR_SEED" "$IMAGES" \
        >"$LOGS/random-writes-$d.out"
    sed 's/^/  /' "$LOGS/random-writes-$d.out"
done
CHANGED_BYTES=$((INCR_MIB * 1048576))

# ----------------------------------------------------------------------- incremental
say "tresor: incremental backup"
before=$(bytes_of "$T_REPO")
prepare "$DISK_T"
timed tresor-incr "$TRESOR" repo backup "$T_REPO" --libvirt-domain "$DOMAIN_T"
T_INCR_SEC=$T_SEC
note_step tresor "repo backup --libvirt-domain (incremental)"
RP2=$(rp_id_from "$LOGS/tresor-incr.out")
T_INCR_LINE=$(grep 'point of' "$LOGS/tresor-incr.out" || true)
T_INCR_BYTES=$(($(bytes_of "$T_REPO") - before))
grep -q "incremental after $RP1" <<<"$T_INCR_LINE" || die "tresor's second backup is not an incremental after $RP1: $T_INCR_LINE"
T_WHOLE=$(grep -c 'reading the whole disk' "$LOGS/tresor-incr.err" || true)
say "  $(secs "$T_INCR_SEC"), new bytes $(mb "$T_INCR_BYTES"): $T_INCR_LINE"

say "virtnbdbackup: incremental backup"
before=$(bytes_of "$V_DIR")
before_data=$(vnb_data_bytes)
prepare "$DISK_V"
timed vnb-incr virtnbdbackup -d "$DOMAIN_V" -l inc -o "$V_DIR"
V_INCR_SEC=$T_SEC
note_step vnb "virtnbdbackup -l inc"
V_INCR_BYTES=$(($(bytes_of "$V_DIR") - before))
V_INCR_DATA=$(($(vnb_data_bytes) - before_data))
say "  $(secs "$V_INCR_SEC"), new bytes $(mb "$V_INCR_BYTES") (disk data $(mb "$V_INCR_DATA"))"

# ------------------------------------------------------------------------------ check
say "check: the domains stopped, tresor's incremental point restored and compared with its disk"
"${VIRSH[@]}" destroy "$DOMAIN_T" >/dev/null
"${VIRSH[@]}" destroy "$DOMAIN_V" >/dev/null
timed tresor-restore "$TRESOR" repo restore "$T_REPO" "$RP2" --disk vda --output "$WORK/restored.raw"
if qemu-img compare -q -f raw -F qcow2 "$WORK/restored.raw" "$DISK_T"; then T_SAME=yes; else T_SAME=NO; fi
rm -f "$WORK/restored.raw"
say "  identical: $T_SAME"

# ---------------------------------------------------------------------------- summary
faster() {
    awk -v p="$1" -v t="$2" 'BEGIN { if (t <= 0) t = 0.01; q = p / t
        if (q >= 1) printf "%.1fx faster", q; else printf "%.1fx slower", 1 / q }'
}
meets() { awk -v a="$1" -v b="$3" "BEGIN { print ((a $2 b) ? \"met\" : \"MISSED\") }"; }
row() { printf '%-36s %12s %14s %16s  %-22s %s\n' "$@"; }
q_full=$(calc "$V_FULL_SEC / ($T_FULL_SEC + 0.001)")
q_incr=$(calc "$V_INCR_SEC / ($T_INCR_SEC + 0.001)")
share=$(calc "$T_FULL_BYTES / $V_FULL_DATA")
{
    echo "Tresor vs virtnbdbackup, a running libvirt domain, $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
    echo "machine: $(nproc) cores ($CPU), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; $CACHE_NOTE"
    echo "virtnbdbackup $VNB_VER (defaults: no compression); tresor commit $TRESOR_REV"
    echo "domains: one per tool, both running, alike (TCG, 256 MiB, 1 vCPU, idle test guest, qemu-ga)"
    echo "disk: vda, $IMAGE_GIB GiB qcow2, ext4 with ~$DATA_GIB GiB of files from this machine: $IMAGE_STATS"
    echo "incremental: $INCR_MIB MiB of random ${INCR_BLOCK_KIB} KiB writes at random offsets, through QEMU"
    echo
    row "measure" "tresor" "virtnbdbackup" "vs virtnbdbackup" "goal" "verdict"
    row "-------" "------" "-------------" "----------------" "----" "-------"
    row "full backup: time" "$(secs "$T_FULL_SEC")" "$(secs "$V_FULL_SEC")" "$(faster "$V_FULL_SEC" "$T_FULL_SEC")" ">= 2x faster" "$(meets "$q_full" ">=" 2)"
    row "full backup: stored (disk data)" "$(mb "$T_FULL_BYTES")" "$(mb "$V_FULL_DATA")" \
        "$(calc "sprintf(\"%.2fx size\", $share)")" "< 0.33x size" "$(meets "$share" "<" 0.3333)"
    row "full backup: stored (whole folder)" "$(mb "$T_FULL_BYTES")" "$(mb "$V_FULL_BYTES")" \
        "$(calc "sprintf(\"%.2fx size\", $T_FULL_BYTES / $V_FULL_BYTES)")" "-" "-"
    row "incremental: time" "$(secs "$T_INCR_SEC")" "$(secs "$V_INCR_SEC")" "$(faster "$V_INCR_SEC" "$T_INCR_SEC")" ">= 3x faster" "$(meets "$q_incr" ">=" 3)"
    row "incremental: stored (disk data)" "$(mb "$T_INCR_BYTES")" "$(mb "$V_INCR_DATA")" \
        "$(calc "sprintf(\"%.2fx size\", $T_INCR_BYTES / ($V_INCR_DATA + 1))")" "-" "-"
    row "incremental: stored (whole folder)" "$(mb "$T_INCR_BYTES")" "$(mb "$V_INCR_BYTES")" "-" "-" "-"
    row "incremental point restored = disk" "$T_SAME" "-" "-" "yes" "$([[ $T_SAME == yes ]] && echo met || echo MISSED)"
    row "peak memory (max RSS)" "$(mib_rss "$T_PEAK_KIB")" "$(mib_rss "$R_PEAK_KIB")" "-" "-" "-"
    echo
    echo "tresor's own lines:"
    echo "  full:        $T_FULL_LINE"
    echo "  incremental: $T_INCR_LINE"
    ((T_WHOLE > 0)) && echo "  WARNING: tresor's incremental read a disk whole ($LOGS/tresor-incr.err)"
    echo
    echo "every measured command: wall time, its own CPU time (user+sys), CPU time others used"
    echo "meanwhile (other processes + hypervisor steal: noise), max RSS"
    printf '  %-6s %-42s %9s %9s %9s %10s\n' tool command wall cpu noise "max RSS"
    printf '%s\n' "${CMD_ROWS[@]}"
    echo "noise over all measured steps: $(secs "$SUM_OTHERS") CPU used by other processes and $(secs "$SUM_STEAL")"
    echo "stolen by the hypervisor, in $(secs "$SUM_SEC") of wall time ($(nproc) cores).$(
        [[ $(calc "($SUM_OTHERS + $SUM_STEAL) > 0.05 * $SUM_SEC * $(nproc)") == 1 ]] &&
            echo " NOISY: rerun on an idle machine before quoting.")"
    echo "Here \"others\" include the domains' QEMU (serving NBD to the tool) and libvirtd: part of"
    echo "each backup's cost, so a backup's noise is never zero; the busy check at the start says"
    echo "whether anything else ran."
    echo
    echo "Times are wall clock of the command alone (GNU time), start-up included. stored:"
    echo "tresor: du -sb of the repository (growth for the incremental); virtnbdbackup: its"
    echo "disk data files (vda.*.data; the goal is checked on these), and du -sb of its whole"
    echo "folder (also the kernel, initrd, domain XML and logs it copies). MB = 10^6 bytes."
} >"$WORK/summary.txt"
echo
cat "$WORK/summary.txt"
say "logs in $LOGS; summary in $WORK/summary.txt"
