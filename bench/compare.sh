#!/usr/bin/env bash
# compare.sh: Tresor against restic, side by side, in one run, on one image.
#
#   bench/compare.sh                    # builds target/release/tresor, runs everything
#   TRESOR_BIN=/path/to/tresor bench/compare.sh
#   SKIP_TRESOR=1 bench/compare.sh      # restic's half only (no tresor needed)
#   KEEP=1 bench/compare.sh             # keep images and repositories afterwards
#
# Measures (see bench/README.md): full backup time and bytes stored, restore time (and
# a byte-for-byte check), incremental backup after 40 MiB of random 64 KiB writes (time,
# new bytes stored, Tresor's metadata growth), a 1 TiB sparse disk holding 1 GiB of data
# against a plain 1 GiB disk, and the peak memory (max RSS) of every tresor command.
# Ends with a plain-text table, also written to $TRESOR_BENCH_DIR/summary.txt.
#
# Environment:
#   TRESOR_BIN         tresor binary; unset: `cargo build --release -p tresor` and use
#                      target/release/tresor of this checkout
#   TRESOR_BENCH_DIR   work folder, emptied at start (default /var/tmp/tresor-bench/run)
#   TRESOR_BENCH_CACHE make-image.sh's staging cache (default /var/tmp/tresor-bench)
#   BENCH_CACHE        cold (default): drop the page cache before each timed step, or
#                      warm: read the step's input once instead. Falls back to warm
#                      when the page cache cannot be dropped, and says so.
#   STEP_TIMEOUT       seconds any one step may take (default 1200)
#   SKIP_TRESOR=1      run restic's half only;  KEEP=1  keep the big files
#   IMAGE_GIB, DATA_GIB, INCR_MIB, SPARSE_DATA_MIB, SPARSE_SIZE: the workload
#                      (defaults 4, 2.5, 40, 1024, 1T; the targets assume the defaults)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${TRESOR_BENCH_DIR:-/var/tmp/tresor-bench/run}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
SKIP_TRESOR=${SKIP_TRESOR:-0}
KEEP=${KEEP:-0}
BENCH_CACHE=${BENCH_CACHE:-cold}
IMAGE_GIB=${IMAGE_GIB:-4}
DATA_GIB=${DATA_GIB:-2.5}
INCR_MIB=${INCR_MIB:-40}
INCR_BLOCK_KIB=64
INCR_SEED=1
SPARSE_DATA_MIB=${SPARSE_DATA_MIB:-1024}
SPARSE_SIZE=${SPARSE_SIZE:-1T}
SPARSE_SEED=1
BENCH_NAME=compare
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

export RESTIC_PASSWORD=secret
export TRESOR_PASSWORD=secret
export RESTIC_CACHE_DIR=$WORK/restic-cache

IMAGE=$WORK/disk.raw # disk name in Tresor: its file name, disk.raw
DISK=$(basename "$IMAGE")
LOGS=$WORK/logs
R_REPO=$WORK/restic-repo
T_REPO=$WORK/tresor-repo     # full + incremental with --dirty-extents
T_REPO_B=$WORK/tresor-repo-b # copy after the full backup: incremental without them

# ---------------------------------------------------------------------------- cleanup
CUR_PID=
cleanup() {
    local rc=$?
    if [[ -n $CUR_PID ]]; then
        kill -TERM "$CUR_PID" 2>/dev/null || true
        wait "$CUR_PID" 2>/dev/null || true
    fi
    if [[ -d $WORK ]]; then
        if [[ $KEEP == 1 ]]; then
            say "KEEP=1: images and repositories kept in $WORK"
        else
            rm -rf "$IMAGE" "$IMAGE.dirty" "$R_REPO" "$T_REPO" "$T_REPO_B" "$RESTIC_CACHE_DIR" \
                "$WORK"/restore-* "$WORK"/plain.raw "$WORK"/sparse.raw "$WORK"/tresor-repo-plain \
                "$WORK"/tresor-repo-sparse
        fi
    fi
    exit "$rc"
}
on_signal() {
    trap - INT TERM
    echo >&2
    say "interrupted: stopping" >&2
    exit 130 # runs cleanup, which stops the running step
}
trap cleanup EXIT
trap on_signal INT TERM

# ------------------------------------------------------------------ page cache handling
# prepare (lib.sh) drops the page cache before each timed step, or reads its inputs.
setup_cache

# --------------------------------------------------------------------- small helpers
# bytes and files under the given subfolders of a repository (missing ones count 0)
meta_bytes() {
    local repo=$1 sum=0 d
    for d in index points; do
        [[ -d $repo/$d ]] && sum=$((sum + $(bytes_of "$repo/$d")))
    done
    echo "$sum"
}
files_in() { if [[ -d $1 ]]; then find "$1" -type f | wc -l; else echo 0; fi; }
# speed: restic time / tresor time, worded
faster() {
    awk -v r="$1" -v t="$2" 'BEGIN {
        if (t <= 0) { t = 0.01 }
        q = r / t
        if (q >= 1) printf "%.1fx faster", q; else printf "%.1fx slower", 1 / q }'
}
# meets A OP B -> "met" / "MISSED"
meets() { awk -v a="$1" -v b="$3" "BEGIN { print ((a $2 b) ? \"met\" : \"MISSED\") }"; }

# ------------------------------------------------------------------------- preflight
[[ $WORK == /* && $WORK != / && $WORK != "$HOME" && $WORK != "$ROOT" ]] ||
    die "TRESOR_BENCH_DIR must be an absolute path of a folder of its own (it is emptied): $WORK"
command -v restic >/dev/null || die "restic is not installed: apt-get install -y restic"
need_gnu_time
for tool in timeout cmp mkfs.ext4 dd truncate "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

rm -rf "$WORK"
mkdir -p "$WORK" "$LOGS"
need_free_gib 20

if [[ $SKIP_TRESOR == 1 ]]; then
    TRESOR="(skipped)"
    say "SKIP_TRESOR=1: measuring restic only"
else
    if [[ -z ${TRESOR_BIN:-} ]]; then
        say "building tresor: cargo build --release -p tresor (in $ROOT)"
        timed cargo-build cargo build --manifest-path "$ROOT/Cargo.toml" --release -p tresor
        TRESOR=$ROOT/target/release/tresor
    else
        TRESOR=$TRESOR_BIN
    fi
    [[ -x $TRESOR ]] || die "no tresor binary at $TRESOR (set TRESOR_BIN, or SKIP_TRESOR=1 for restic's half only)"
    # The interface this script is written against; fail now rather than after restic.
    missing=
    h=$(timeout 30 "$TRESOR" repo init --help 2>&1) || missing+=" 'repo init'"
    h=$(timeout 30 "$TRESOR" repo backup --help 2>&1) || missing+=" 'repo backup'"
    for o in --name --parent --dirty-extents; do grep -q -e "$o" <<<"$h" || missing+=" 'repo backup $o'"; done
    h=$(timeout 30 "$TRESOR" repo restore --help 2>&1) || missing+=" 'repo restore'"
    for o in --disk --output; do grep -q -e "$o" <<<"$h" || missing+=" 'repo restore $o'"; done
    [[ -z $missing ]] || die "$TRESOR lacks what this benchmark needs:$missing. Has the CLI landed? (SKIP_TRESOR=1 runs restic's half only)"
fi

TRESOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
[[ -n $(git -C "$ROOT" status --porcelain -- crates 2>/dev/null) ]] && TRESOR_REV+=" + uncommitted changes"
RESTIC_VER=$(restic version | awk '{print $2}')
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
say "work dir $WORK; $CACHE_NOTE"
say "restic $RESTIC_VER; tresor $TRESOR (commit $TRESOR_REV)"
# Is the machine idle? CPU the whole machine uses over 2 s (the load average would still
# remember a previous run).
busy=$(machine_busy)
if [[ $(calc "$busy > 0.1") == 1 ]]; then
    say "warning: the machine is busy ($(calc "sprintf(\"%.0f\", 100 * $busy)")% of a core used or stolen): timings will be noisy"
fi

# ----------------------------------------------------------------------------- image
say "making the image: $IMAGE_GIB GiB, ~$DATA_GIB GiB of files (bench/make-image.sh)"
timed make-image "$HERE/make-image.sh" "$IMAGE" "$IMAGE_GIB" "$DATA_GIB"
IMAGE_STATS=$(grep -E 'regions all-zero' "$LOGS/make-image.out" | sed 's/^make-image: [^:]*: //')
say "image: $IMAGE_STATS"

# ---------------------------------------------------------------------- restic: full
say "restic: init, full backup"
timed restic-init restic -r "$R_REPO" init
prepare "$IMAGE"
timed restic-full restic -r "$R_REPO" backup "$IMAGE"
R_FULL_SEC=$T_SEC
note_step restic "backup (full)"
R_FULL_BYTES=$(bytes_of "$R_REPO")
say "restic full backup: $(secs "$R_FULL_SEC"), repository $(mb "$R_FULL_BYTES"), max RSS $(mib_rss "$T_KIB")"

say "restic: restore"
prepare "$R_REPO"
timed restic-restore restic -r "$R_REPO" restore latest --target "$WORK/restore-restic"
R_RESTORE_SEC=$T_SEC
note_step restic "restore (full)"
R_RESTORED=$WORK/restore-restic$IMAGE # restic recreates the absolute path
if [[ -f $R_RESTORED ]] && cmp -s "$IMAGE" "$R_RESTORED"; then R_RESTORE_OK=yes; else R_RESTORE_OK=NO; fi
rm -rf "$WORK/restore-restic"
say "restic restore: $(secs "$R_RESTORE_SEC"), identical: $R_RESTORE_OK"

# ---------------------------------------------------------------------- tresor: full
T_FULL_SEC="" T_FULL_BYTES="" T_RESTORE_SEC="" T_RESTORE_OK="" RP1=""
if [[ $SKIP_TRESOR != 1 ]]; then
    say "tresor: init, full backup"
    timed tresor-init "$TRESOR" repo init "$T_REPO"
    note_step tresor "repo init"
    prepare "$IMAGE"
    timed tresor-full "$TRESOR" repo backup "$T_REPO" --name bench-full "$IMAGE"
    T_FULL_SEC=$T_SEC
    note_step tresor "repo backup (full)"
    RP1=$(rp_id_from "$LOGS/tresor-full.out")
    T_FULL_BYTES=$(bytes_of "$T_REPO")
    say "tresor full backup: $(secs "$T_FULL_SEC"), repository $(mb "$T_FULL_BYTES"), point $RP1"

    say "tresor: restore"
    prepare "$T_REPO"
    timed tresor-restore "$TRESOR" repo restore "$T_REPO" "$RP1" --disk "$DISK" --output "$WORK/restore-tresor.raw"
    T_RESTORE_SEC=$T_SEC
    note_step tresor "repo restore (full)"
    if cmp -s "$IMAGE" "$WORK/restore-tresor.raw"; then T_RESTORE_OK=yes; else T_RESTORE_OK=NO; fi
    rm -f "$WORK/restore-tresor.raw"
    say "tresor restore: $(secs "$T_RESTORE_SEC"), identical: $T_RESTORE_OK"

    # The incremental without --dirty-extents runs against an identical copy, so that the
    # first incremental's chunks do not make the second look free.
    cp -a "$T_REPO" "$T_REPO_B"
fi

# ---------------------------------------------------------------------- random writes
say "guest writes: $INCR_MIB MiB of random ${INCR_BLOCK_KIB} KiB writes (bench/random-writes.sh)"
"$HERE/random-writes.sh" "$IMAGE" "$INCR_MIB" "$INCR_BLOCK_KIB" "$INCR_SEED" >"$LOGS/random-writes.out"
sed 's/^/  /' "$LOGS/random-writes.out"
CHANGED_BYTES=$((INCR_MIB * 1048576))

# --------------------------------------------------------------- restic: incremental
say "restic: incremental backup"
before=$(bytes_of "$R_REPO")
prepare "$IMAGE"
timed restic-incr restic -r "$R_REPO" backup "$IMAGE"
R_INCR_SEC=$T_SEC
note_step restic "backup (incremental)"
R_INCR_BYTES=$(($(bytes_of "$R_REPO") - before))
say "restic incremental: $(secs "$R_INCR_SEC"), new bytes $(mb "$R_INCR_BYTES")"

# --------------------------------------------------------------- tresor: incremental
T_INCR_SEC="" T_INCR_BYTES="" T_INCRF_SEC="" T_INCRF_BYTES="" T_META_BEFORE="" T_META_AFTER=""
T_META_FILES_BEFORE="" T_META_FILES_AFTER="" T_DATA_FILES_NEW="" T_INCR_RESTORE_OK="" T_INCR_RESTORE_SEC=""
T_SAID=
if [[ $SKIP_TRESOR != 1 ]]; then
    say "tresor: incremental backup with --dirty-extents"
    before=$(bytes_of "$T_REPO")
    T_META_BEFORE=$(meta_bytes "$T_REPO")
    T_META_FILES_BEFORE=$(($(files_in "$T_REPO/index") + $(files_in "$T_REPO/points")))
    data_files_before=$(files_in "$T_REPO/data")
    prepare "$IMAGE" "$IMAGE.dirty"
    timed tresor-incr-dirty "$TRESOR" repo backup "$T_REPO" --name bench-incr --parent "$RP1" \
        --dirty-extents "$IMAGE.dirty" "$IMAGE"
    T_INCR_SEC=$T_SEC
    note_step tresor "repo backup (incremental, dirty extents)"
    RP2=$(rp_id_from "$LOGS/tresor-incr-dirty.out")
    T_INCR_BYTES=$(($(bytes_of "$T_REPO") - before))
    T_META_AFTER=$(meta_bytes "$T_REPO")
    T_META_FILES_AFTER=$(($(files_in "$T_REPO/index") + $(files_in "$T_REPO/points")))
    T_DATA_FILES_NEW=$(($(files_in "$T_REPO/data") - data_files_before))
    # Whatever tresor itself says about the point (tree nodes, metadata), for the note.
    T_SAID=$(head -n -1 "$LOGS/tresor-incr-dirty.out" | grep -i -E 'tree|meta|index|stored|new|chunk' | head -n 8 || true)
    say "tresor incremental (dirty extents): $(secs "$T_INCR_SEC"), new bytes $(mb "$T_INCR_BYTES"), point $RP2"

    say "tresor: restore of the incremental point (correctness check)"
    prepare "$T_REPO"
    timed tresor-restore-incr "$TRESOR" repo restore "$T_REPO" "$RP2" --disk "$DISK" --output "$WORK/restore-tresor-incr.raw"
    T_INCR_RESTORE_SEC=$T_SEC
    note_step tresor "repo restore (incremental)"
    if cmp -s "$IMAGE" "$WORK/restore-tresor-incr.raw"; then T_INCR_RESTORE_OK=yes; else T_INCR_RESTORE_OK=NO; fi
    rm -f "$WORK/restore-tresor-incr.raw"
    say "tresor restore of the incremental: $(secs "$T_SEC"), identical: $T_INCR_RESTORE_OK"

    say "tresor: incremental backup without --dirty-extents (full read, deduplicated against the parent)"
    before=$(bytes_of "$T_REPO_B")
    prepare "$IMAGE"
    timed tresor-incr-full "$TRESOR" repo backup "$T_REPO_B" --name bench-incr-full --parent "$RP1" "$IMAGE"
    T_INCRF_SEC=$T_SEC
    note_step tresor "repo backup (incremental, full read)"
    rp_id_from "$LOGS/tresor-incr-full.out" >/dev/null
    T_INCRF_BYTES=$(($(bytes_of "$T_REPO_B") - before))
    say "tresor incremental (full read): $(secs "$T_INCRF_SEC"), new bytes $(mb "$T_INCRF_BYTES")"
    rm -rf "$T_REPO_B"

    timed tresor-list "$TRESOR" repo list "$T_REPO"
    note_step tresor "repo list"
fi

# ------------------------------------------------------ tresor: 1 TiB sparse vs 1 GiB
T_PLAIN_SEC="" T_SPARSE_SEC="" T_PLAIN_BYTES="" T_SPARSE_BYTES=""
if [[ $SKIP_TRESOR != 1 ]]; then
    say "sparse: $SPARSE_DATA_MIB MiB of random data, as a plain image and scattered in 1 MiB pieces over a $SPARSE_SIZE sparse image"
    rm -f "$IMAGE" "$IMAGE.dirty" # the 4 GiB image is done with
    timed make-plain dd if=/dev/urandom of="$WORK/plain.raw" bs=1M count="$SPARSE_DATA_MIB" iflag=fullblock status=none
    truncate -s "$SPARSE_SIZE" "$WORK/sparse.raw"
    # Piece i of plain.raw goes to a distinct random 1 MiB slot, slots ascending: the
    # sparse image's data, read in order, is plain.raw.
    "$PY" - "$(stat -c %s "$WORK/sparse.raw")" "$SPARSE_DATA_MIB" "$SPARSE_SEED" >"$WORK/sparse.slots" <<'EOF'
import random, sys
size, n, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i, slot in enumerate(sorted(random.Random(seed).sample(range(size >> 20), n))):
    print(i, slot)
EOF
    # shellcheck disable=SC2016 # expanded by the inner shell
    timed make-sparse bash -c 'while read -r i slot; do
            dd if="$1" of="$2" bs=1M count=1 skip="$i" seek="$slot" conv=notrunc status=none
        done <"$3"' _ "$WORK/plain.raw" "$WORK/sparse.raw" "$WORK/sparse.slots"
    say "  sparse.raw: $(stat -c %s "$WORK/sparse.raw") bytes, $(du -h "$WORK/sparse.raw" | cut -f1) allocated; plain.raw: $(du -h "$WORK/plain.raw" | cut -f1)"

    timed tresor-init-plain "$TRESOR" repo init "$WORK/tresor-repo-plain"
    timed tresor-init-sparse "$TRESOR" repo init "$WORK/tresor-repo-sparse"
    prepare "$WORK/plain.raw"
    timed tresor-plain "$TRESOR" repo backup "$WORK/tresor-repo-plain" --name bench-plain "$WORK/plain.raw"
    T_PLAIN_SEC=$T_SEC
    note_step tresor "repo backup (plain $SPARSE_DATA_MIB MiB image)"
    rp_id_from "$LOGS/tresor-plain.out" >/dev/null
    T_PLAIN_BYTES=$(bytes_of "$WORK/tresor-repo-plain")
    prepare "$WORK/sparse.raw"
    timed tresor-sparse "$TRESOR" repo backup "$WORK/tresor-repo-sparse" --name bench-sparse "$WORK/sparse.raw"
    T_SPARSE_SEC=$T_SEC
    note_step tresor "repo backup ($SPARSE_SIZE sparse image)"
    rp_id_from "$LOGS/tresor-sparse.out" >/dev/null
    T_SPARSE_BYTES=$(bytes_of "$WORK/tresor-repo-sparse")
    say "tresor: plain $(secs "$T_PLAIN_SEC") ($(mb "$T_PLAIN_BYTES")), sparse $(secs "$T_SPARSE_SEC") ($(mb "$T_SPARSE_BYTES"))"
    rm -rf "$WORK/plain.raw" "$WORK/sparse.raw" "$WORK/tresor-repo-plain" "$WORK/tresor-repo-sparse"
fi

# --------------------------------------------------------------------------- summary
dash="-"
cell() { if [[ -n $1 ]]; then "${@:2}" "$1"; else echo "$dash"; fi; }
row() { printf '%-38s %12s %12s %16s  %-26s %s\n' "$@"; }
{
    echo "Tresor vs restic, $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
    echo "machine: $(nproc) cores ($CPU), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; $CACHE_NOTE"
    echo "restic $RESTIC_VER (defaults: repository v2, compression auto); tresor commit $TRESOR_REV"
    echo "image: $IMAGE_GIB GiB raw, ext4 with ~$DATA_GIB GiB of files from this machine: $IMAGE_STATS"
    echo "incremental: $INCR_MIB MiB of random ${INCR_BLOCK_KIB} KiB writes at random offsets ($((CHANGED_BYTES / (INCR_BLOCK_KIB * 1024))) writes)"
    echo
    row "measure" "tresor" "restic" "vs restic" "target" "verdict"
    row "-------" "------" "------" "---------" "------" "-------"
    if [[ -n $T_FULL_SEC ]]; then
        v_full=$(meets "$(calc "$R_FULL_SEC / ($T_FULL_SEC + 0.001)")" ">=" 5)
        v_rest=$(meets "$(calc "$R_RESTORE_SEC / ($T_RESTORE_SEC + 0.001)")" ">=" 3)
        v_incr=$(meets "$(calc "$R_INCR_SEC / ($T_INCR_SEC + 0.001)")" ">=" 20)
        v_istore=$(meets "$T_INCR_BYTES" "<=" "$(calc "1.5 * $CHANGED_BYTES")")
        v_istoref=$(meets "$T_INCRF_BYTES" "<=" "$(calc "1.5 * $CHANGED_BYTES")")
        v_sparse=$(meets "$T_SPARSE_SEC" "<=" "$(calc "1.5 * $T_PLAIN_SEC + 0.5")")
        v_mem=$(meets "$T_PEAK_KIB" "<=" $((256 * 1024)))
        r_full=$(faster "$R_FULL_SEC" "$T_FULL_SEC")
        r_rest=$(faster "$R_RESTORE_SEC" "$T_RESTORE_SEC")
        r_incr=$(faster "$R_INCR_SEC" "$T_INCR_SEC")
        r_incrf=$(faster "$R_INCR_SEC" "$T_INCRF_SEC")
        r_fbytes=$(calc "sprintf(\"%.2fx size\", $T_FULL_BYTES / $R_FULL_BYTES)")
        r_ibytes=$(calc "sprintf(\"%.2fx size\", $T_INCR_BYTES / ($R_INCR_BYTES + 1))")
        r_ibytesf=$(calc "sprintf(\"%.2fx size\", $T_INCRF_BYTES / ($R_INCR_BYTES + 1))")
        v_ok=$([[ $T_RESTORE_OK == yes && $T_INCR_RESTORE_OK == yes ]] && echo met || echo MISSED)
        r_sparse=$(calc "sprintf(\"%.2fx plain's\", $T_SPARSE_SEC / ($T_PLAIN_SEC + 0.001))")
    else
        v_full=$dash v_rest=$dash v_incr=$dash v_istore=$dash v_istoref=$dash v_sparse=$dash v_mem=$dash v_ok=$dash
        r_full=$dash r_rest=$dash r_incr=$dash r_incrf=$dash r_fbytes=$dash r_ibytes=$dash r_ibytesf=$dash r_sparse=$dash
    fi
    lim=$(mb "$(calc "1.5 * $CHANGED_BYTES")")
    row "full backup: time" "$(cell "$T_FULL_SEC" secs)" "$(secs "$R_FULL_SEC")" "$r_full" ">= 5x faster" "$v_full"
    row "full backup: stored (du -sb repo)" "$(cell "$T_FULL_BYTES" mb)" "$(mb "$R_FULL_BYTES")" "$r_fbytes" "-" "-"
    row "restore of the full point: time" "$(cell "$T_RESTORE_SEC" secs)" "$(secs "$R_RESTORE_SEC")" "$r_rest" ">= 3x faster" "$v_rest"
    row "restore: byte-identical (cmp)" "${T_RESTORE_OK:-$dash}" "$R_RESTORE_OK" "-" "yes (full, incremental)" "$v_ok"
    row "incremental, dirty extents: time" "$(cell "$T_INCR_SEC" secs)" "$(secs "$R_INCR_SEC")" "$r_incr" ">= 20x faster" "$v_incr"
    row "incremental, dirty extents: stored" "$(cell "$T_INCR_BYTES" mb)" "$(mb "$R_INCR_BYTES")" "$r_ibytes" "<= $lim (1.5x change)" "$v_istore"
    row "incremental, full read: time" "$(cell "$T_INCRF_SEC" secs)" "$(secs "$R_INCR_SEC")" "$r_incrf" "-" "-"
    row "incremental, full read: stored" "$(cell "$T_INCRF_BYTES" mb)" "$(mb "$R_INCR_BYTES")" "$r_ibytesf" "<= $lim (1.5x change)" "$v_istoref"
    if [[ -n $T_META_AFTER ]]; then
        meta_new=$((T_META_AFTER - T_META_BEFORE))
        row "incremental: metadata (index/+points/)" "$(kb "$meta_new")" "-" \
            "$(calc "sprintf(\"%.1f%% of full's\", 100 * $meta_new / ($T_META_BEFORE + 1))")" "grows with the change" "-"
    fi
    row "restore of the incremental: time" "$(cell "$T_INCR_RESTORE_SEC" secs)" "-" "-" "-" "-"
    row "$SPARSE_SIZE sparse, $SPARSE_DATA_MIB MiB data: time" "$(cell "$T_SPARSE_SEC" secs)" "-" "$r_sparse" "~ plain (<= 1.5x + 0.5 s)" "$v_sparse"
    row "plain $SPARSE_DATA_MIB MiB image, same data: time" "$(cell "$T_PLAIN_SEC" secs)" "-" "-" "-" "-"
    row "peak memory (max RSS, all commands)" "$( ((T_PEAK_KIB > 0)) && mib_rss "$T_PEAK_KIB" || echo "$dash")" "$(mib_rss "$R_PEAK_KIB")" "-" "<= 256 MiB (tresor)" "$v_mem"
    echo
    echo "every measured command: wall time, its own CPU time (user+sys), CPU time others used"
    echo "meanwhile (other processes + hypervisor steal: noise), max RSS"
    printf '  %-6s %-42s %9s %9s %9s %10s\n' tool command wall cpu noise "max RSS"
    printf '%s\n' "${CMD_ROWS[@]}"
    echo "noise over all measured steps: $(secs "$SUM_OTHERS") CPU used by other processes and $(secs "$SUM_STEAL")"
    echo "stolen by the hypervisor, in $(secs "$SUM_SEC") of wall time ($(nproc) cores).$(
        [[ $(calc "($SUM_OTHERS + $SUM_STEAL) > 0.05 * $SUM_SEC * $(nproc)") == 1 ]] &&
            echo " NOISY: rerun on an idle machine before quoting.")"
    if [[ -n $T_META_AFTER ]]; then
        echo
        echo "Tresor repository, incremental point (dirty extents): index/+points/ $(kb "$T_META_BEFORE") -> $(kb "$T_META_AFTER"),"
        echo "  files in index/+points/ $T_META_FILES_BEFORE -> $T_META_FILES_AFTER, new files in data/: $T_DATA_FILES_NEW."
        echo "$SPARSE_SIZE sparse test: repositories: sparse $(mb "$T_SPARSE_BYTES"), plain $(mb "$T_PLAIN_BYTES")."
    fi
    if [[ -n $T_SAID ]]; then
        echo
        echo "tresor's own report of the incremental (dirty extents) point:"
        printf '  %s\n' "${T_SAID//$'\n'/$'\n'  }"
    fi
    echo
    echo "Times are wall clock of the command alone (GNU time); stored = du -sb of the"
    echo "repository (after - before for incrementals); MB = 10^6 bytes. restic reads the"
    echo "whole image on every backup; its restore writes every byte (no sparse restore in 0.14)."
} >"$WORK/summary.txt"
echo
cat "$WORK/summary.txt"
say "logs in $LOGS; summary in $WORK/summary.txt"
