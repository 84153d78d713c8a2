#!/usr/bin/env bash
# replication.sh: how fast a repository reaches its secondary copy, in one run.
#
#   bench/replication.sh                       # builds target/release/tresor, ~10 minutes
#   IMAGE_GIB=1 DATA_GIB=0.5 bench/replication.sh    # a quick try
#   KEEP=1 bench/replication.sh                # keep the image and repositories afterwards
#
# Steps (see bench/README.md):
#   a. the image (bench/make-image.sh), backed up into repository A
#   b. the peer figure: `cp -a A C && sync`, the storage's own copy speed; then
#      `tresor repo replicate A --to B` into an empty B: times, MiB/s, their ratio
#   c. 40 MiB of random 64 KiB writes (bench/random-writes.sh), an incremental backup
#      with --parent and --dirty-extents (as compare.sh), then `repo replicate A --to B`
#      again: bytes copied against bytes the backup added (target about 1.0)
#   d. the vault service on the embedded default (`tresor serve --with-local-agent`,
#      secondary in DATA/replica) protecting a QEMU VM without guest OS whose disk is
#      the image as qcow2: replication lag of the full point and of an incremental one
#      after 40 MiB of random writes through QEMU (point's `replicated` time minus the
#      backup job's end; target under a minute), the replication jobs' duration and
#      bytes copied
#   e. a summary table, printed last and written to summary.txt
# It prints figures; it asserts nothing (the verdict column says met or MISSED).
#
# Environment:
#   TRESOR_BIN         tresor binary; unset: `cargo build --release -p tresor` and use
#                      ${CARGO_TARGET_DIR:-target}/release/tresor of this checkout
#   TRESOR_BENCH_DIR   work folder, emptied at start (default /var/tmp/tresor-bench/replication)
#   TRESOR_BENCH_CACHE make-image.sh's staging cache (default /var/tmp/tresor-bench)
#   STEP_TIMEOUT       seconds any one step may take (default 1200)
#   LAG_TIMEOUT        seconds to wait for a point to reach the secondary (default 600)
#   IMAGE_GIB, DATA_GIB, INCR_MIB   the workload (defaults 4, 2.5, 40)
#   KEEP=1             keep the big files (image, repositories, service data)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${TRESOR_BENCH_DIR:-/var/tmp/tresor-bench/replication}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
LAG_TIMEOUT=${LAG_TIMEOUT:-600}
IMAGE_GIB=${IMAGE_GIB:-4}
DATA_GIB=${DATA_GIB:-2.5}
INCR_MIB=${INCR_MIB:-40}
INCR_BLOCK_KIB=64
KEEP=${KEEP:-0}
LAG_TARGET=60
BENCH_NAME=replication
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
export TRESOR_PASSWORD=secret
unset TRESOR_PASSWORD_FILE TRESOR_SERVER TRESOR_TOKEN TRESOR_FINGERPRINT

IMAGE=$WORK/disk.raw
LOGS=$WORK/logs
A=$WORK/repo-a     # the primary
B=$WORK/repo-b     # tresor repo replicate's copy
C=$WORK/repo-c     # cp -a's copy
SVC=$WORK/service  # the vault service: data folder, VM disk, sockets
DATA=$SVC/data
VAULT=bench
HOST=bench-host

# ---------------------------------------------------------------------------- cleanup
SERVER_PID=
QEMU_PID=
cleanup() {
    local rc=$?
    stop_pid "$CUR_PID"
    stop_pid "$SERVER_PID"
    stop_pid "$QEMU_PID"
    if [[ -d $WORK ]]; then
        if [[ $KEEP == 1 ]]; then
            say "KEEP=1: image and repositories kept in $WORK"
        else
            rm -rf "$IMAGE" "$IMAGE.dirty" "$A" "$B" "$C" "$SVC"
        fi
    fi
    exit "$rc"
}
on_signal() {
    trap - INT TERM
    echo >&2
    say "interrupted: stopping" >&2
    exit 130 # runs cleanup
}
trap cleanup EXIT
trap on_signal INT TERM

# ------------------------------------------------------------------ page cache handling
CACHE_NOTE="cold cache (page cache dropped before each timed copy)"
drop_caches || CACHE_NOTE="warm cache (the page cache cannot be dropped here: run as root for cold)"
prepare() { drop_caches || sync; }

# --------------------------------------------------------------------- small helpers
# Bytes of the objects of a repository folder: every file but temp files, writers/ and gc/.
repo_bytes() {
    find "$1" \( -name writers -o -name gc \) -prune -o -type f ! -name '.*' -printf '%s\n' |
        awk '{ s += $1 } END { printf "%d", s }'
}
# The number after "replicated N bytes" on repo replicate's last line.
copied_bytes() { sed -n 's/^replicated \([0-9]*\) bytes.*/\1/p' "$1" | tail -n 1; }
point_from() {
    local id
    id=$(tail -n 1 "$1" | tr -d '\r' | sed 's/[[:space:]]*$//')
    [[ $id =~ ^[0-9a-f]{32}$ ]] || die "tresor did not print a recovery point id last (got '$id'; see $1)"
    echo "$id"
}
# ------------------------------------------------------------------------- preflight
[[ $WORK == /* && $WORK != / && $WORK != "$HOME" && $WORK != "$ROOT" ]] ||
    die "TRESOR_BENCH_DIR must be an absolute path of a folder of its own (it is emptied): $WORK"
need_gnu_time
for tool in timeout mkfs.ext4 qemu-img qemu-system-x86_64 "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found (QEMU: scripts/install-deps.sh as root)"
done
rm -rf "$WORK"
mkdir -p "$WORK" "$LOGS" "$SVC"
need_free_gib "$(calc "int($IMAGE_GIB * 3 + 4)")"

find_tresor
timeout 30 "$TRESOR" repo replicate --help >/dev/null 2>&1 ||
    die "$TRESOR has no 'repo replicate' (an older build?)"
TRESOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
[[ -n $(git -C "$ROOT" status --porcelain -- crates 2>/dev/null) ]] && TRESOR_REV+=" + uncommitted changes"
say "work dir $WORK; $CACHE_NOTE; tresor $TRESOR (commit $TRESOR_REV)"
BUSY=$(calc "sprintf(\"%.0f\", 100 * $(machine_busy))")
BUSY_NOTE=
if ((BUSY > 10)); then
    BUSY_NOTE="the machine was busy at the start ($BUSY% of a core used or stolen): timings are noisy"
    say "warning: $BUSY_NOTE"
fi

# ------------------------------------------------------------- a. image, backup into A
say "making the image: $IMAGE_GIB GiB, ~$DATA_GIB GiB of files (bench/make-image.sh)"
timed make-image "$HERE/make-image.sh" "$IMAGE" "$IMAGE_GIB" "$DATA_GIB"
SIZE=$(stat -c %s "$IMAGE")
timed init-a "$TRESOR" repo init "$A"
say "full backup into A"
prepare
timed backup-full "$TRESOR" repo backup "$A" --name vm "$IMAGE"
BACKUP_FULL_SEC=$SEC
RP1=$(point_from "$LOGS/backup-full.out")
A_BYTES=$(repo_bytes "$A")
A_FILES=$(find "$A" \( -name writers -o -name gc \) -prune -o -type f ! -name '.*' -print | wc -l)
say "full backup: $BACKUP_FULL_SEC s, repository A $(mb "$A_BYTES") in $A_FILES files, point $RP1"

# ------------------------------------------------------------ b. cp -a, then replicate
say "the storage's own copy: cp -a A C && sync"
prepare
# shellcheck disable=SC2016 # $1 and $2 are bash -c's arguments
timed cp-full bash -c 'cp -a "$1" "$2" && sync' cp "$A" "$C"
CP_SEC=$SEC
say "cp -a: $CP_SEC s, $(mibs "$A_BYTES" "$CP_SEC")"
rm -rf "$C"

say "tresor repo replicate A --to B (B empty)"
prepare
timed replicate-full "$TRESOR" repo replicate "$A" --to "$B"
REPL_SEC=$SEC
REPL_BYTES=$(copied_bytes "$LOGS/replicate-full.out")
[[ -n $REPL_BYTES ]] || die "repo replicate printed no 'replicated N bytes' line (see $LOGS/replicate-full.out)"
B_BYTES=$(repo_bytes "$B")
say "replicate: $REPL_SEC s, copied $(mb "$REPL_BYTES") ($(mibs "$REPL_BYTES" "$REPL_SEC")); B holds $(mb "$B_BYTES")"

# ----------------------------------------------------------- c. incremental, replicate
say "guest writes: $INCR_MIB MiB of random ${INCR_BLOCK_KIB} KiB writes (bench/random-writes.sh)"
"$HERE/random-writes.sh" "$IMAGE" "$INCR_MIB" "$INCR_BLOCK_KIB" 1 >"$LOGS/random-writes.out"
CHANGED=$((INCR_MIB * 1048576))
say "incremental backup into A (--parent, --dirty-extents)"
before=$A_BYTES
prepare
timed backup-incr "$TRESOR" repo backup "$A" --name vm --parent "$RP1" --dirty-extents "$IMAGE.dirty" "$IMAGE"
BACKUP_INCR_SEC=$SEC
RP2=$(point_from "$LOGS/backup-incr.out")
timed list-a "$TRESOR" repo list "$A" --json
ADDED=$(json "next(p['stats']['bytes_added'] for p in d if p['id'] == '$RP2')" <"$LOGS/list-a.out")
GROWTH=$(($(repo_bytes "$A") - before))
say "incremental: $BACKUP_INCR_SEC s, bytes added $(mb "$ADDED"), repository growth $(mb "$GROWTH")"

say "tresor repo replicate A --to B (B has the full point)"
prepare
timed replicate-incr "$TRESOR" repo replicate "$A" --to "$B"
REPL2_SEC=$SEC
REPL2_BYTES=$(copied_bytes "$LOGS/replicate-incr.out")
REPL_LINE=$(head -n 1 "$LOGS/replicate-full.out")
REPL2_LINE=$(head -n 1 "$LOGS/replicate-incr.out")
say "replicate: $REPL2_SEC s, copied $(mb "$REPL2_BYTES"): $(ratio "$REPL2_BYTES" "$ADDED")x the bytes added"
timed verify-b "$TRESOR" repo verify "$B"
VERIFY_B=$(grep -q "no errors found" "$LOGS/verify-b.out" && echo "no errors" || echo "ERRORS")
rm -rf "$B"

# -------------------------------------------------------------- d. the vault service
say "the vault service: a QEMU VM without guest OS on the image (qcow2)"
timed convert qemu-img convert -f raw -O qcow2 "$IMAGE" "$SVC/disk.qcow2"
rm -f "$IMAGE" "$IMAGE.dirty" # the VM's disk is the qcow2 now
qemu-system-x86_64 -machine none -accel tcg -nodefaults -display none -name app \
    -drive "if=none,id=drive0,node-name=disk0,format=qcow2,file=$SVC/disk.qcow2" \
    -qmp "unix:$SVC/agent.qmp,server=on,wait=off" \
    -qmp "unix:$SVC/test.qmp,server=on,wait=off" \
    </dev/null >"$LOGS/qemu.out" 2>"$LOGS/qemu.err" &
QEMU_PID=$!
for _ in $(seq 200); do
    [[ -S $SVC/agent.qmp && -S $SVC/test.qmp ]] && break
    kill -0 "$QEMU_PID" 2>/dev/null || die "QEMU exited: $(cat "$LOGS/qemu.err")"
    sleep 0.1
done
[[ -S $SVC/test.qmp ]] || die "QEMU did not open its QMP sockets"

cat >"$SVC/agent.toml" <<EOF
state_dir = "$SVC/agent-state"
host = "$HOST"
location = "local"
scratch_dir = "$SVC"
[[vm]]
name = "app"
qmp = "$SVC/agent.qmp"
EOF
PORT=$(free_port)
say "starting tresor serve --with-local-agent on 127.0.0.1:$PORT (data $DATA)"
TRESOR_LOG=info "$TRESOR" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" \
    --with-local-agent --agent-config "$SVC/agent.toml" \
    </dev/null >"$LOGS/serve.out" 2>"$LOGS/serve.err" &
SERVER_PID=$!
for _ in $(seq 300); do
    [[ -f $DATA/cli.json ]] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "tresor serve exited: $(tail -n 5 "$LOGS/serve.err")"
    sleep 0.1
done
[[ -f $DATA/cli.json ]] || die "tresor serve did not write $DATA/cli.json"
export TRESOR_CONFIG=$DATA/cli.json

cli() { timeout 120 "$TRESOR" "$@"; }
cli vault create -n "$VAULT" -g rg -l local -o json >"$LOGS/vault-create.out"
REDUNDANCY=$(json "d['storageRedundancy'] + ', secondary ' + str(d['replication']['secondaryLocation'])" <"$LOGS/vault-create.out")
say "vault $VAULT: $REDUNDANCY"
for _ in $(seq 300); do
    cli protectable-item list -v "$VAULT" -o json 2>/dev/null |
        json "any(v.get('vm') == 'app' for v in d)" 2>/dev/null | grep -q True && break
    sleep 0.2
done
cli protection enable-for-vm -v "$VAULT" --vm app --host "$HOST" >"$LOGS/enable.out"

# write_random MIB SEED: MIB MiB of random data in 64 KiB blocks at distinct random
# offsets of the running VM's disk, through the test's QMP monitor, then a flush.
write_random() {
    "$PY" - "$SVC/test.qmp" "$SVC" "$1" "$2" "$SIZE" <<'EOF'
import json, os, random, socket, sys
sock, folder, mib, seed, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
block = 65536
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
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
def hmp(line):
    out = call("human-monitor-command", {"command-line": line})
    if out.strip():
        raise SystemExit(f"{line}: {out}")
json.loads(f.readline())  # greeting
call("qmp_capabilities")
rng = random.Random(seed)
path = os.path.join(folder, "write.bin")
for b in rng.sample(range(size // block), mib * 1048576 // block):
    with open(path, "wb") as out:
        out.write(os.urandom(block))
    hmp(f'qemu-io drive0 "write -s {path} {b * block} {block}"')
os.remove(path)
hmp('qemu-io drive0 "flush"')
EOF
}

# service_point LABEL: back up now, wait for the job, then for the point on the
# secondary. Sets S_<LABEL>_* figures.
service_point() {
    local label=$1 job point end replicated waited=0 repl pub_fig total_bytes runs_fig
    cli protection backup-now -v "$VAULT" -i app -o json >"$LOGS/svc-$label-backup-now.out"
    job=$(json "d['id']" <"$LOGS/svc-$label-backup-now.out")
    timed "svc-$label-job-wait" "$TRESOR" job wait -v "$VAULT" -n "$job"
    cli vault show -n "$VAULT" -o json >"$LOGS/svc-$label-vault-at-end.json"
    cli job show -v "$VAULT" -n "$job" -o json >"$LOGS/svc-$label-backup-job.json"
    local status
    status=$(json "d['status']" <"$LOGS/svc-$label-backup-job.json")
    [[ $status == Completed* ]] || die "the $label backup job ended $status (see $LOGS/svc-$label-backup-job.json)"
    point=$(json "d['result']['recoveryPoint']" <"$LOGS/svc-$label-backup-job.json")
    end=$(json "d['endTime']" <"$LOGS/svc-$label-backup-job.json")
    printf -v "S_${label}_BACKUP_SEC" '%s' "$(json "'%.2f' % d['duration']" <"$LOGS/svc-$label-backup-job.json")"
    printf -v "S_${label}_ADDED" '%s' "$(json "d['result']['bytesAdded']" <"$LOGS/svc-$label-backup-job.json")"
    printf -v "S_${label}_AT_END" '%s' "$(json "'%s, lag %.1f s, %.1f MB pending' % (d['replication']['status'], d['replication']['lagSeconds'], d['replication']['bytesPending'] / 1e6)" <"$LOGS/svc-$label-vault-at-end.json")"
    say "$label backup: job $job, point $point, $(eval echo "\$S_${label}_BACKUP_SEC") s; at its end: $(eval echo "\$S_${label}_AT_END")"
    replicated=
    while ((waited < LAG_TIMEOUT * 5)); do
        replicated=$(cli recoverypoint list -v "$VAULT" -i app -o json |
            json "next((p.get('replicated') for p in d if p['id'] == '$point'), None)")
        [[ -n $replicated ]] && break
        sleep 0.2
        waited=$((waited + 1))
    done
    if [[ -z $replicated ]]; then
        say "warning: the $label point was not on the secondary after $LAG_TIMEOUT s"
        printf -v "S_${label}_LAG" '%s' "timeout"
        printf -v "S_${label}_REPL" '%s' "-"
        printf -v "S_${label}_REPL_BYTES" '%s' 0
        printf -v "S_${label}_RUNS" '%s' "-"
        return
    fi
    printf -v "S_${label}_LAG" '%s' "$(seconds_between "$end" "$replicated")"
    # The replication runs for this point: the one that published it, and every run
    # since the backup started (packs are copied while the backup still writes them;
    # such a run gets its job when it ends).
    for _ in $(seq 100); do
        cli job list -v "$VAULT" --operation Replication --limit 500 -o json >"$LOGS/svc-$label-replication-jobs.json"
        repl=$("$PY" - "$LOGS/svc-$label-replication-jobs.json" "$LOGS/svc-$label-backup-job.json" "$point" <<'EOF2'
import json, re, sys, datetime
def t(s):
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", s)
    return datetime.datetime.fromisoformat(m.group(1) + "+00:00").timestamp() + (float("0." + m.group(2)) if m.group(2) else 0)
jobs = [j for j in json.load(open(sys.argv[1])) if j.get("status", "").startswith("Completed") and j.get("endTime")]
backup = json.load(open(sys.argv[2]))
point = sys.argv[3]
pub = [j for j in jobs if point in (j.get("result") or {}).get("recoveryPointsReplicated", [])]
if not pub:
    sys.exit(0)
pub = pub[0]
runs = [j for j in jobs if t(j["startTime"]) >= t(backup["startTime"]) and t(j["endTime"]) <= t(pub["endTime"])]
during = sum(j["result"]["bytesCopied"] for j in runs if t(j["endTime"]) <= t(backup["endTime"]) + 0.001)
total = sum(j["result"]["bytesCopied"] for j in runs)
print("\t".join([
    "%.2f s, copied %.1f MB (%d objects, %.1f MB already there)" % (pub["duration"], pub["result"]["bytesCopied"] / 1e6, pub["result"]["objectsCopied"], pub["result"]["bytesAlreadyOnSecondary"] / 1e6),
    str(total),
    "%d runs, %.1f MB copied, %.1f MB of it by runs that ended before the backup did" % (len(runs), total / 1e6, during / 1e6),
]))
EOF2
)
        [[ -n $repl ]] && break
        sleep 0.2
    done
    IFS=$'\t' read -r pub_fig total_bytes runs_fig <<<"$repl"
    printf -v "S_${label}_REPL" '%s' "${pub_fig:--}"
    printf -v "S_${label}_REPL_BYTES" '%s' "${total_bytes:-0}"
    printf -v "S_${label}_RUNS" '%s' "${runs_fig:--}"
    say "$label point on the secondary at $replicated: lag $(eval echo "\$S_${label}_LAG") s; replication job ${pub_fig:--}; since the backup started: ${runs_fig:--}"
}

say "service: full backup of the running VM, then its replication"
service_point FULL
say "service: $INCR_MIB MiB of random 64 KiB writes into the running VM (QMP, qemu-io)"
write_random "$INCR_MIB" 2
say "service: incremental backup, then its replication"
service_point INCR
cli vault show -n "$VAULT" -o json >"$LOGS/svc-vault-final.json"
FINAL=$(json "'%s, %d points on the secondary, lag %.1f s' % (d['replication']['status'], d['replication']['recoveryPointsOnSecondary'], d['replication']['lagSeconds'])" <"$LOGS/svc-vault-final.json")
stop_pid "$SERVER_PID"
SERVER_PID=
stop_pid "$QEMU_PID"
QEMU_PID=

# ----------------------------------------------------------------------- e. summary
verdict_le() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "timeout" || a == "") print "MISSED"; else print ((a + 0 <= b) ? "met" : "MISSED") }'; }
about_one() { awk -v r="$1" 'BEGIN { if (r == "-") print "-"; else print ((r >= 0.9 && r <= 1.15) ? "met" : "MISSED") }'; }
row() { printf '%-48s %-58s %-16s %s\n' "$@"; }
INCR_RATIO=$(ratio "$REPL2_BYTES" "$ADDED")
S_FULL_RATIO=$(ratio "$S_FULL_REPL_BYTES" "$S_FULL_ADDED")
S_INCR_RATIO=$(ratio "$S_INCR_REPL_BYTES" "$S_INCR_ADDED")
{
    echo
    echo "Replication: ${IMAGE_GIB} GiB image, ext4 with ${DATA_GIB} GiB of files; $CACHE_NOTE"
    echo "tresor $TRESOR (commit $TRESOR_REV); $(nproc) cores${BUSY_NOTE:+; $BUSY_NOTE}"
    echo "service: vault $VAULT, $REDUNDANCY (embedded default: DATA/vaults -> DATA/replica)"
    row "measure" "figure" "target" "verdict"
    row "repository A after the full backup" "$(mb "$A_BYTES") in $A_FILES files (backup $BACKUP_FULL_SEC s)" "-" "-"
    row "cp -a A C && sync (the storage's own copy)" "$CP_SEC s, $(mibs "$A_BYTES" "$CP_SEC")" "-" "-"
    row "repo replicate A --to B, B empty" "$REPL_SEC s, $(mb "$REPL_BYTES"), $(mibs "$REPL_BYTES" "$REPL_SEC")" "-" "-"
    row "replicate time / cp time" "$(ratio "$REPL_SEC" "$CP_SEC")x" "cp is the floor" "-"
    row "incremental backup, $(mb "$CHANGED") randomly rewritten" "$BACKUP_INCR_SEC s, added $(mb "$ADDED"), A grew $(mb "$GROWTH")" "-" "-"
    row "repo replicate A --to B, incremental" "$REPL2_SEC s, copied $(mb "$REPL2_BYTES")" "-" "-"
    row "  bytes copied / bytes the backup added" "${INCR_RATIO}x" "about 1.0" "$(about_one "$INCR_RATIO")"
    row "  bytes copied / A's growth" "$(ratio "$REPL2_BYTES" "$GROWTH")x" "1.0" "-"
    row "repo verify of the copy" "$VERIFY_B" "no errors" "$([[ $VERIFY_B == "no errors" ]] && echo met || echo MISSED)"
    row "service: full backup job" "${S_FULL_BACKUP_SEC} s, added $(mb "$S_FULL_ADDED")" "-" "-"
    row "  replication state at the backup's end" "$S_FULL_AT_END" "-" "-"
    row "  lag: point replicated - backup job's end" "$S_FULL_LAG s" "< $LAG_TARGET s" "$(verdict_le "$S_FULL_LAG" "$LAG_TARGET")"
    row "  replication job that published the point" "$S_FULL_REPL" "-" "-"
    row "  replication runs since the backup started" "$S_FULL_RUNS" "-" "-"
    row "  bytes copied / bytes the backup added" "${S_FULL_RATIO}x" "about 1.0" "$(about_one "$S_FULL_RATIO")"
    row "service: incremental, $INCR_MIB MiB written in the VM" "${S_INCR_BACKUP_SEC} s, added $(mb "$S_INCR_ADDED")" "-" "-"
    row "  replication state at the backup's end" "$S_INCR_AT_END" "-" "-"
    row "  lag: point replicated - backup job's end" "$S_INCR_LAG s" "< $LAG_TARGET s" "$(verdict_le "$S_INCR_LAG" "$LAG_TARGET")"
    row "  replication job that published the point" "$S_INCR_REPL" "-" "-"
    row "  replication runs since the backup started" "$S_INCR_RUNS" "-" "-"
    row "  bytes copied / bytes the backup added" "${S_INCR_RATIO}x" "about 1.0" "$(about_one "$S_INCR_RATIO")"
    row "service at the end" "$FINAL" "-" "-"
    echo "repo replicate, full:        $REPL_LINE"
    echo "repo replicate, incremental: $REPL2_LINE"
} | tee "$WORK/summary.txt"
