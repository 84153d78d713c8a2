#!/usr/bin/env bash
# service.sh: backups through the vault service against the local engine, in one run,
# on one image; with TRESOR_BIN_BEFORE, an older build's service path in the same run.
#
#   bench/service.sh                                  # builds target/release/tresor
#   TRESOR_BIN_BEFORE=/path/to/older/tresor bench/service.sh      # before/after pair
#   IMAGE_GIB=1 DATA_GIB=0.5 bench/service.sh         # a quick try
#   KEEP=1 bench/service.sh                           # keep images and repositories
#
# Steps (see bench/README.md):
#   1. the image (bench/make-image.sh), and a qcow2 copy of it (qemu-img convert)
#   2. local, raw (the reference compare.sh measures): `tresor repo backup` full, then
#      40 MiB of random 64 KiB writes (bench/random-writes.sh) and an incremental with
#      --parent and --dirty-extents
#   3. local, qcow2: `tresor repo backup --bitmaps` full, the same writes replayed into
#      the qcow2 with qemu-io (its persistent dirty bitmap records them), incremental
#      `--bitmaps --parent latest`: the same reads the agent makes of a stopped VM
#   4. the service: `tresor serve` in a fresh data folder on a free port of 127.0.0.1
#      and a host agent (`tresor agent run`, or the server's own with
#      SERVICE_AGENT=local), a stopped VM listed by its qcow2 image in agent.toml; the
#      CLI's vault create (LocallyRedundant: no replication competes), protection
#      enable-for-vm, backup-now and job wait, for a full and an incremental backup
#      (the same writes replayed in between); wall time from backup-now to the end of
#      job wait, the job's duration (job show), CPU of the server and the agent
#   5. with TRESOR_BIN_BEFORE: step 4 again with that binary
#   6. a summary table, printed last and written to summary.txt
# It prints figures; it asserts nothing (the verdict column says met or MISSED).
#
# Environment:
#   TRESOR_BIN         tresor binary; unset: `cargo build --release -p tresor` and use
#                      ${CARGO_TARGET_DIR:-target}/release/tresor of this checkout
#   TRESOR_BIN_BEFORE  an older tresor binary: its service path is measured too
#   TRESOR_BENCH_DIR   work folder, emptied at start (default /var/tmp/tresor-bench/service)
#   TRESOR_BENCH_CACHE make-image.sh's staging cache (default /var/tmp/tresor-bench)
#   BENCH_CACHE        cold (default: page cache dropped before each timed step) or warm
#   SERVICE_AGENT      separate (default: `tresor agent run`, its own process, so the
#                      server's and the agent's CPU are told apart) or local
#                      (`tresor serve --with-local-agent`, one process)
#   LOCAL_RAW=0        skip the raw image's local backups (step 2)
#   BEFORE_FIRST=1     the older binary's service path first (a check that the order
#                      of the two does not favour one)
#   SERVICE_PERF=1     record each service job with `perf record` (server and agent
#                      apart), reports in logs/*-perf.txt; perf's own cost is in the
#                      figures then: a run for where the time goes, not for the table
#   STEP_TIMEOUT       seconds any one step may take (default 1200)
#   IMAGE_GIB, DATA_GIB, INCR_MIB   the workload (defaults 4, 2.5, 40)
#   KEEP=1             keep the big files (images, repositories, service data)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${TRESOR_BENCH_DIR:-/var/tmp/tresor-bench/service}
STEP_TIMEOUT=${STEP_TIMEOUT:-1200}
BENCH_CACHE=${BENCH_CACHE:-cold}
SERVICE_AGENT=${SERVICE_AGENT:-separate}
LOCAL_RAW=${LOCAL_RAW:-1}
SERVICE_PERF=${SERVICE_PERF:-0}
BEFORE_FIRST=${BEFORE_FIRST:-0}
IMAGE_GIB=${IMAGE_GIB:-4}
DATA_GIB=${DATA_GIB:-2.5}
INCR_MIB=${INCR_MIB:-40}
INCR_BLOCK_KIB=64
INCR_SEED=1
KEEP=${KEEP:-0}
SVC_TARGET=1.15    # service / local
INTAKE_TARGET=1.10 # after / before
BENCH_NAME=service
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
export TRESOR_PASSWORD=secret
unset TRESOR_PASSWORD_FILE TRESOR_SERVER TRESOR_TOKEN TRESOR_FINGERPRINT TRESOR_CONFIG

IMAGE=$WORK/disk.raw  # make-image.sh's image; the random writes land here first
QCOW=$WORK/disk.qcow2 # its qcow2 copy before the writes; each path gets a copy of it
WRITES=$WORK/writes   # the writes, one file per block, for qemu-io
LOGS=$WORK/logs
VAULT=bench
HOST=bench-host
VM=bench-vm

# ---------------------------------------------------------------------------- cleanup
SERVER_PID=
AGENT_PID=
cleanup() {
    local rc=$?
    stop_pid "$CUR_PID"
    stop_pid "$AGENT_PID"
    stop_pid "$SERVER_PID"
    if [[ -d $WORK ]]; then
        if [[ $KEEP == 1 ]]; then
            say "KEEP=1: images, repositories and service data kept in $WORK"
        else
            rm -rf "$IMAGE" "$IMAGE.dirty" "$QCOW" "$WRITES" "$WORK"/local-* "$WORK"/svc-*
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

# --------------------------------------------------------------------- small helpers
# proc_cpu PID...: CPU seconds (user + system, with reaped children such as qemu-nbd)
# of the processes, summed; a process that is gone counts 0.
proc_cpu() {
    local pid t=0 v
    for pid in "$@"; do
        [[ -n $pid && -r /proc/$pid/stat ]] || continue
        v=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 + $14 + $15 }') || v=0
        t=$((t + v))
    done
    calc "$t / $HZ"
}
# peak_rss PID: VmHWM of a running process, KiB (0 when gone).
peak_rss() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Bytes of a repository's objects (writers/, gc/ and temp files left out).
repo_bytes() {
    [[ -d $1 ]] || { echo 0; return; }
    find "$1" \( -name writers -o -name gc \) -prune -o -type f ! -name '.*' -printf '%s\n' |
        awk '{ s += $1 } END { printf "%d", s }'
}
# rev_of BIN: the commit of the checkout a binary was built in (BIN in
# CHECKOUT/target/release), or "?".
rev_of() {
    local d
    d=$(cd "$(dirname "$1")/../.." 2>/dev/null && pwd) || { echo "?"; return; }
    git -C "$d" rev-parse --short HEAD 2>/dev/null || echo "?"
}
# check_cli BIN: the interface this script drives; fails now rather than mid-run.
check_cli() {
    local bin=$1 missing= h
    h=$(timeout 30 "$bin" repo backup --help 2>&1) || missing+=" 'repo backup'"
    for o in --name --parent --dirty-extents --bitmaps; do grep -q -e "$o" <<<"$h" || missing+=" 'repo backup $o'"; done
    h=$(timeout 30 "$bin" serve --help 2>&1) || missing+=" 'serve'"
    for o in --data-dir --listen --with-local-agent --agent-config; do grep -q -e "$o" <<<"$h" || missing+=" 'serve $o'"; done
    timeout 30 "$bin" agent run --help >/dev/null 2>&1 || missing+=" 'agent run'"
    timeout 30 "$bin" protection backup-now --help >/dev/null 2>&1 || missing+=" 'protection backup-now'"
    timeout 30 "$bin" job wait --help >/dev/null 2>&1 || missing+=" 'job wait'"
    [[ -z $missing ]] || die "$bin lacks what this benchmark needs:$missing"
}

# ------------------------------------------------------------------------- preflight
[[ $WORK == /* && $WORK != / && $WORK != "$HOME" && $WORK != "$ROOT" ]] ||
    die "TRESOR_BENCH_DIR must be an absolute path of a folder of its own (it is emptied): $WORK"
[[ $SERVICE_AGENT == separate || $SERVICE_AGENT == local ]] ||
    die "SERVICE_AGENT must be separate or local, not $SERVICE_AGENT"
need_gnu_time
[[ $SERVICE_PERF != 1 ]] || command -v perf >/dev/null || die "SERVICE_PERF=1 needs perf (apt-get install linux-perf)"
for tool in timeout mkfs.ext4 qemu-img qemu-io qemu-nbd "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found (QEMU's tools: scripts/install-deps.sh as root)"
done
rm -rf "$WORK"
mkdir -p "$WORK" "$LOGS"
setup_cache
need_free_gib "$(calc "int($IMAGE_GIB * 4 + 4)")"

find_tresor
check_cli "$TRESOR"
TRESOR_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
[[ -n ${TRESOR_BIN:-} ]] && TRESOR_REV=$(rev_of "$TRESOR")
[[ -z ${TRESOR_BIN:-} && -n $(git -C "$ROOT" status --porcelain -- crates 2>/dev/null) ]] &&
    TRESOR_REV+=" + uncommitted changes"
BEFORE=${TRESOR_BIN_BEFORE:-}
BEFORE_REV=
if [[ -n $BEFORE ]]; then
    [[ -x $BEFORE ]] || die "TRESOR_BIN_BEFORE is not an executable: $BEFORE"
    check_cli "$BEFORE"
    BEFORE_REV=$(rev_of "$BEFORE")
fi
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
say "work dir $WORK; $CACHE_NOTE"
say "tresor $TRESOR (commit $TRESOR_REV)${BEFORE:+; before: $BEFORE (commit $BEFORE_REV)}"
BUSY=$(calc "sprintf(\"%.0f\", 100 * $(machine_busy))")
BUSY_NOTE=
if ((BUSY > 10)); then
    BUSY_NOTE="the machine was busy at the start ($BUSY% of a core used or stolen): timings are noisy"
    say "warning: $BUSY_NOTE"
fi

# Result rows: LABEL|WALL|JOB|ENGINE|CPU|SPLIT|NOISE|READ|STORED|RSS
declare -a ROWS=()
add_row() { ROWS+=("$(printf '%s|' "$@")"); }

# ------------------------------------------------------------------------- 1. image
say "making the image: $IMAGE_GIB GiB, ~$DATA_GIB GiB of files (bench/make-image.sh)"
timed make-image "$HERE/make-image.sh" "$IMAGE" "$IMAGE_GIB" "$DATA_GIB"
IMAGE_STATS=$(grep -E 'regions all-zero' "$LOGS/make-image.out" | sed 's/^make-image: [^:]*: //')
say "image: $IMAGE_STATS"
timed convert qemu-img convert -f raw -O qcow2 "$IMAGE" "$QCOW"
say "qcow2 copy: $(du -h "$QCOW" | cut -f1) ($SEC s)"
SIZE=$(stat -c %s "$IMAGE")
CHANGED=$((INCR_MIB * 1048576))

# local_backup LABEL REPO ARGS...: a timed `tresor repo backup`; adds a row.
local_backup() {
    local label=$1 repo=$2 before point stats
    shift 2
    before=$(repo_bytes "$repo")
    timed "$label" "$TRESOR" repo backup "$repo" "$@"
    note_step tresor "$label"
    point=$(rp_id_from "$LOGS/$label.out")
    "$TRESOR" repo list "$repo" --json >"$LOGS/$label-list.json"
    stats=$(json "next('%.2f %d' % (p['stats']['duration_ms'] / 1000, p['stats']['bytes_read']) for p in d if p['id'] == '$point')" <"$LOGS/$label-list.json")
    LAST_STORED=$(($(repo_bytes "$repo") - before))
    LAST_SEC=$T_SEC
    LAST_READ=${stats#* }
    add_row "$label" "$T_SEC" "-" "${stats% *}" "$T_CPU" "-" "$(calc "$T_OTHERS + $T_STEAL")" "$LAST_READ" "$LAST_STORED" "$T_KIB"
    say "$label: $(secs "$T_SEC"), read $(mb "$LAST_READ"), stored $(mb "$LAST_STORED"), point $point"
}

# ------------------------------------------------- 2. local, raw; the random writes
if [[ $LOCAL_RAW == 1 ]]; then
    say "local, raw image: full backup (tresor repo backup)"
    timed local-raw-init "$TRESOR" repo init "$WORK/local-raw"
    prepare "$IMAGE"
    local_backup "local raw: full" "$WORK/local-raw" --name "$VM" "$IMAGE"
    LR_FULL_SEC=$LAST_SEC
fi
say "guest writes: $INCR_MIB MiB of random ${INCR_BLOCK_KIB} KiB writes (bench/random-writes.sh)"
"$HERE/random-writes.sh" "$IMAGE" "$INCR_MIB" "$INCR_BLOCK_KIB" "$INCR_SEED" >"$LOGS/random-writes.out"
sed 's/^/  /' "$LOGS/random-writes.out"
if [[ $LOCAL_RAW == 1 ]]; then
    say "local, raw image: incremental backup (--parent, --dirty-extents)"
    prepare "$IMAGE" "$IMAGE.dirty"
    local_backup "local raw: incremental" "$WORK/local-raw" --name "$VM" --parent latest \
        --dirty-extents "$IMAGE.dirty" "$IMAGE"
    LR_INCR_SEC=$LAST_SEC
    rm -rf "$WORK/local-raw"
fi
# The same writes for every qcow2 copy: the changed blocks, one file each, and the
# qemu-io commands that write them (qemu-io opens the image read-write, so the image's
# persistent dirty bitmaps record the writes, as a VM's would).
mkdir -p "$WRITES"
"$PY" - "$IMAGE" "$IMAGE.dirty" "$WRITES" <<'EOF'
import os, sys
image, dirty, out = sys.argv[1:]
fd = os.open(image, os.O_RDONLY)
cmds = []
for i, line in enumerate(l for l in open(dirty) if not l.startswith("#")):
    off, length = map(int, line.split())
    path = os.path.join(out, f"{i:05d}.bin")
    with open(path, "wb") as f:
        f.write(os.pread(fd, length, off))
    cmds.append(f"write -s {path} {off} {length}")
cmds.append("flush")
with open(os.path.join(out, "commands"), "w") as f:
    f.write("\n".join(cmds) + "\n")
EOF
# replay_writes QCOW2: the writes into a copy of the qcow2, then a check that its
# persistent bitmap(s) saw them.
replay_writes() {
    local -a args=()
    local c
    while IFS= read -r c; do args+=(-c "$c"); done <"$WRITES/commands"
    qemu-io -f qcow2 "${args[@]}" "$1" >"$LOGS/qemu-io.out" 2>&1 ||
        die "qemu-io could not write into $1: $(tail -n 3 "$LOGS/qemu-io.out")"
}
CHANGED_NOTE="$(sed -n 's/^random-writes: \(wrote [^ ]* x [^ ]* KiB = [^ ]* MiB\).*/\1/p' "$LOGS/random-writes.out")"

# ------------------------------------------------------------------- 3. local, qcow2
say "local, qcow2 image: full backup (tresor repo backup --bitmaps)"
cp --sparse=always "$QCOW" "$WORK/local-disk.qcow2"
timed local-qcow2-init "$TRESOR" repo init "$WORK/local-qcow2"
prepare "$WORK/local-disk.qcow2"
local_backup "local qcow2: full" "$WORK/local-qcow2" --name "$VM" --bitmaps "$WORK/local-disk.qcow2"
L_FULL_SEC=$LAST_SEC L_FULL_STORED=$LAST_STORED
replay_writes "$WORK/local-disk.qcow2"
qemu-img info --output=json "$WORK/local-disk.qcow2" >"$LOGS/local-qcow2-info.json"
BITMAPS=$(json "', '.join(b['name'] for b in d.get('format-specific', {}).get('data', {}).get('bitmaps', []))" <"$LOGS/local-qcow2-info.json")
say "writes replayed into the qcow2 copy; its persistent bitmaps: ${BITMAPS:-none}"
if qemu-img compare -q -f raw -F qcow2 "$IMAGE" "$WORK/local-disk.qcow2"; then
    REPLAY_OK=yes
else
    REPLAY_OK=NO
    say "warning: the qcow2 copy differs from the raw image after the writes"
fi
say "local, qcow2 image: incremental backup (--bitmaps --parent latest)"
prepare "$WORK/local-disk.qcow2"
local_backup "local qcow2: incremental" "$WORK/local-qcow2" --name "$VM" --bitmaps --parent latest "$WORK/local-disk.qcow2"
L_INCR_SEC=$LAST_SEC L_INCR_READ=$LAST_READ L_INCR_STORED=$LAST_STORED
rm -rf "$WORK/local-qcow2" "$WORK/local-disk.qcow2"
rm -f "$IMAGE" # the qcow2 copy and the writes are all the service paths need

# ------------------------------------------------------------------------ 4. service
# service_run LABEL BIN: a fresh server (and agent) on BIN, full and incremental
# backups of the stopped VM. Sets <LABEL>_FULL_* and <LABEL>_INCR_* (WALL, JOB, READ,
# STORED).
service_run() {
    local label=$1 bin=$2 dir port cli_pids
    dir=$WORK/svc-$label
    mkdir -p "$dir"
    cp --sparse=always "$QCOW" "$dir/disk.qcow2"
    port=$(free_port)
    cat >"$dir/agent.toml" <<EOF
state_dir = "$dir/agent-state"
host = "$HOST"
location = "local"
scratch_dir = "$dir"
$([[ $SERVICE_AGENT == separate ]] && echo "credentials = \"$dir/vault.credentials\"")
[[vm]]
name = "$VM"
disks = ["$dir/disk.qcow2"]
EOF
    local -a serve_args=(serve --data-dir "$dir/data" --listen "127.0.0.1:$port")
    [[ $SERVICE_AGENT == local ]] && serve_args+=(--with-local-agent --agent-config "$dir/agent.toml")
    say "[$label] tresor serve on 127.0.0.1:$port (data $dir/data; agent: $SERVICE_AGENT)"
    TRESOR_LOG=info "$bin" "${serve_args[@]}" </dev/null >"$LOGS/$label-serve.out" 2>"$LOGS/$label-serve.err" &
    SERVER_PID=$!
    for _ in $(seq 300); do
        [[ -f $dir/data/cli.json ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "tresor serve exited: $(tail -n 5 "$LOGS/$label-serve.err")"
        sleep 0.1
    done
    [[ -f $dir/data/cli.json ]] || die "tresor serve did not write $dir/data/cli.json"
    export TRESOR_CONFIG=$dir/data/cli.json
    cli() { timeout 120 "$bin" "$@"; }
    cli vault create -n "$VAULT" -g rg -l local -o json >"$LOGS/$label-vault-create.out"
    cli vault backup-properties set -n "$VAULT" --backup-storage-redundancy LocallyRedundant \
        >"$LOGS/$label-vault-redundancy.out"
    if [[ $SERVICE_AGENT == separate ]]; then
        cli vault credentials -n "$VAULT" --output-file "$dir/vault.credentials" >"$LOGS/$label-credentials.out"
        TRESOR_LOG=info "$bin" agent run --config "$dir/agent.toml" \
            </dev/null >"$LOGS/$label-agent.out" 2>"$LOGS/$label-agent.err" &
        AGENT_PID=$!
    fi
    local seen=
    for _ in $(seq 300); do
        if cli protectable-item list -v "$VAULT" -o json 2>/dev/null |
            json "any(v.get('vm') == '$VM' for v in d)" 2>/dev/null | grep -q True; then
            seen=1
            break
        fi
        [[ -z $AGENT_PID ]] || kill -0 "$AGENT_PID" 2>/dev/null ||
            die "tresor agent run exited: $(tail -n 5 "$LOGS/$label-agent.err")"
        sleep 0.2
    done
    [[ -n $seen ]] || die "the agent did not report $VM within a minute (see $LOGS/$label-*.err)"
    cli protection enable-for-vm -v "$VAULT" --vm "$VM" --host "$HOST" >"$LOGS/$label-enable.out"
    cli_pids="$SERVER_PID $AGENT_PID"

    service_job "$label" full "$dir" "$cli_pids"
    say "[$label] the same $INCR_MIB MiB of writes into the stopped VM's image (qemu-io)"
    replay_writes "$dir/disk.qcow2"
    service_job "$label" incremental "$dir" "$cli_pids"
    local rss_s rss_a
    rss_s=$(peak_rss "$SERVER_PID")
    rss_a=$([[ -n $AGENT_PID ]] && peak_rss "$AGENT_PID" || echo 0)
    printf -v "${label^^}_RSS" '%s' "server $(mib_rss "$rss_s")$([[ -n $AGENT_PID ]] && echo ", agent $(mib_rss "$rss_a")")"
    stop_pid "$AGENT_PID"
    AGENT_PID=
    stop_pid "$SERVER_PID"
    SERVER_PID=
    unset TRESOR_CONFIG
    [[ $KEEP == 1 ]] || rm -f "$dir/disk.qcow2"
}

# service_job LABEL KIND DIR "SERVER_PID [AGENT_PID]": back up now, wait for the
# job; adds a row.
service_job() {
    local label=$1 kind=$2 dir=$3 server agent job t0 t1 s0 s1 a0 a1 b0 st0 b1 st1 before
    read -r server agent <<<"$4"
    before=$(repo_bytes "$dir/data/vaults")
    prepare "$dir/disk.qcow2"
    read -r b0 st0 < <(cpu_ticks)
    s0=$(proc_cpu "$server")
    a0=$(proc_cpu "$agent")
    local -a perf_pids=()
    if [[ $SERVICE_PERF == 1 ]]; then
        local p who
        for who in server agent; do
            p=${!who}
            [[ -n $p ]] || continue
            perf record -q -F 499 -g -o "$LOGS/$label-$kind-$who.perf" -p "$p" \
                >"$LOGS/$label-$kind-$who-perf.out" 2>&1 &
            perf_pids+=($!)
        done
        sleep 1
    fi
    t0=$(date +%s.%N)
    cli protection backup-now -v "$VAULT" -i "$VM" -o json >"$LOGS/$label-$kind-backup-now.out"
    job=$(json "d['id']" <"$LOGS/$label-$kind-backup-now.out")
    timed "$label-$kind-job-wait" "$bin" job wait -v "$VAULT" -n "$job"
    t1=$(date +%s.%N)
    s1=$(proc_cpu "$server")
    a1=$(proc_cpu "$agent")
    read -r b1 st1 < <(cpu_ticks)
    if ((${#perf_pids[@]} > 0)); then
        local pp f
        for pp in "${perf_pids[@]}"; do kill -INT "$pp" 2>/dev/null || true; done
        for pp in "${perf_pids[@]}"; do wait "$pp" 2>/dev/null || true; done
        for f in "$LOGS/$label-$kind"-*.perf; do
            perf report -i "$f" --no-children --sort dso,sym --percent-limit 0.5 --stdio 2>/dev/null |
                grep -v '^$' | grep -v '^#' | grep -E '^ +[0-9]' | head -n 40 >"${f%.perf}-perf.txt" || true
        done
    fi
    cli job show -v "$VAULT" -n "$job" -o json >"$LOGS/$label-$kind-job.json"
    local status wall jobsec read added stored cpu_s cpu_a noise engine point split
    status=$(json "d['status']" <"$LOGS/$label-$kind-job.json")
    [[ $status == Completed* ]] || die "the $label $kind backup job ended $status (see $LOGS/$label-$kind-job.json)"
    point=$(json "d['result']['recoveryPoint']" <"$LOGS/$label-$kind-job.json")
    jobsec=$(json "'%.2f' % d['duration']" <"$LOGS/$label-$kind-job.json")
    read=$(json "d['result']['bytesRead']" <"$LOGS/$label-$kind-job.json")
    added=$(json "d['result']['bytesAdded']" <"$LOGS/$label-$kind-job.json")
    cli recoverypoint list -v "$VAULT" -i "$VM" -o json >"$LOGS/$label-$kind-points.json"
    engine=$(json "next(('%.2f' % ((p.get('details') or p)['stats']['duration_ms'] / 1000) for p in d if p['id'] == '$point'), '-')" \
        <"$LOGS/$label-$kind-points.json" 2>/dev/null || echo "-")
    wall=$(calc "sprintf(\"%.2f\", $t1 - $t0)")
    stored=$(($(repo_bytes "$dir/data/vaults") - before))
    cpu_s=$(calc "$s1 - $s0")
    cpu_a=$(calc "$a1 - $a0")
    # Noise: CPU the rest of the machine used (all busy time but the server's, the
    # agent's and job wait's own) plus time stolen by the hypervisor.
    noise=$(calc "sprintf(\"%.2f\", (($b1 - $b0) / $HZ - $cpu_s - $cpu_a - $T_CPU < 0 ? 0 : ($b1 - $b0) / $HZ - $cpu_s - $cpu_a - $T_CPU) + ($st1 - $st0) / $HZ)")
    if [[ $SERVICE_AGENT == separate ]]; then
        split="agent $(calc "sprintf(\"%.1f\", $cpu_a)") + server $(calc "sprintf(\"%.1f\", $cpu_s)")"
    else
        split="one process"
    fi
    add_row "$([[ $label == after ]] && echo service || echo "service ($label)"): $kind" "$wall" "$jobsec" "$engine" "$(calc "$cpu_s + $cpu_a")" "$split" "$noise" "$read" "$stored" "-"
    SUM_SEC=$(calc "$SUM_SEC + $wall")
    SUM_OTHERS=$(calc "$SUM_OTHERS + $noise")
    local up=${label^^}_${kind^^}
    up=${up/INCREMENTAL/INCR}
    printf -v "${up}_WALL" '%s' "$wall"
    printf -v "${up}_JOB" '%s' "$jobsec"
    printf -v "${up}_READ" '%s' "$read"
    printf -v "${up}_STORED" '%s' "$stored"
    say "[$label] $kind backup: wall $(secs "$wall"), job $(secs "$jobsec"), engine ${engine} s, read $(mb "$read"), added $(mb "$added"), stored $(mb "$stored"), CPU $split s, noise $(secs "$noise")"
}

if [[ -n $BEFORE && $BEFORE_FIRST == 1 ]]; then
    service_run before "$BEFORE"
    service_run after "$TRESOR"
else
    service_run after "$TRESOR"
    [[ -z $BEFORE ]] || service_run before "$BEFORE"
fi

# ------------------------------------------------------------------------ 6. summary
verdict_le() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || a == "" || b == "") print "-"; else print ((a + 0 <= b) ? "met" : "MISSED") }'; }
incr_kind() { # READ: a true incremental reads about the change, a full read the disk
    awk -v r="$1" -v c="$CHANGED" 'BEGIN { print (r <= 4 * c) ? "reads the change" : "FULL READ" }'
}
row() { printf '%-34s %9s %9s %9s %9s %-24s %8s %11s %11s\n' "$@"; }
{
    echo "Backups through the vault service against the local engine, $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
    echo "machine: $(nproc) cores ($CPU), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; $CACHE_NOTE${BUSY_NOTE:+; $BUSY_NOTE}"
    echo "after: $TRESOR (commit $TRESOR_REV)"
    [[ -n $BEFORE ]] && echo "before: $BEFORE (commit $BEFORE_REV)$([[ $BEFORE_FIRST == 1 ]] && echo "; measured first")"
    echo "image: $IMAGE_GIB GiB, ext4 with ~$DATA_GIB GiB of files: $IMAGE_STATS; as qcow2 for the local qcow2 and service paths"
    echo "incremental: $CHANGED_NOTE of random data at random offsets (random-writes.sh on the raw image; the same"
    echo "  blocks replayed into each qcow2 copy with qemu-io, so its persistent dirty bitmap records them; replay identical to raw: $REPLAY_OK)"
    echo "service: tresor serve on 127.0.0.1, $([[ $SERVICE_AGENT == separate ]] && echo "tresor agent run as its own process" || echo "its local agent (--with-local-agent)"); the VM stopped, listed"
    echo "  by its qcow2 image in agent.toml (read through qemu-nbd, the parent's persistent bitmap giving the dirty extents);"
    echo "  vault LocallyRedundant (no replication during the backups). A raw image would be read whole at every backup"
    echo "  through the service (deduplicated against the last point: no bitmaps), like 'local raw' without --dirty-extents."
    echo
    row "backup" "wall" "job" "engine" "CPU" "CPU split" "noise" "read" "stored"
    row "------" "----" "---" "------" "---" "---------" "-----" "----" "------"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r l w j e c sp n rd st _ <<<"$r"
        row "$l" "$(secs "$w")" "$([[ $j == - ]] && echo - || secs "$j")" "$([[ $e == - ]] && echo - || secs "$e")" \
            "$(secs "$c")" "$sp" "$(secs "$n")" "$(mb "$rd")" "$(mb "$st")"
    done
    echo
    printf '%-52s %10s  %-12s %s\n' "ratio" "figure" "target" "verdict"
    rr() { printf '%-52s %10s  %-12s %s\n' "$1" "$2" "$3" "$(verdict_le "$2" "${4:-}")"; }
    rr "service / local qcow2, full (wall)" "$(ratio "$AFTER_FULL_WALL" "$L_FULL_SEC")" "<= $SVC_TARGET" "$SVC_TARGET"
    rr "service / local qcow2, incremental (wall)" "$(ratio "$AFTER_INCR_WALL" "$L_INCR_SEC")" "<= $SVC_TARGET" "$SVC_TARGET"
    if [[ $LOCAL_RAW == 1 ]]; then
        rr "service / local raw, full (wall)" "$(ratio "$AFTER_FULL_WALL" "$LR_FULL_SEC")" "-"
        rr "service / local raw --dirty-extents, incr. (wall)" "$(ratio "$AFTER_INCR_WALL" "$LR_INCR_SEC")" "-"
    fi
    if [[ -n $BEFORE ]]; then
        rr "after / before, service full (wall)" "$(ratio "$AFTER_FULL_WALL" "$BEFORE_FULL_WALL")" "<= $INTAKE_TARGET" "$INTAKE_TARGET"
        rr "after / before, service full (job duration)" "$(ratio "$AFTER_FULL_JOB" "$BEFORE_FULL_JOB")" "<= $INTAKE_TARGET" "$INTAKE_TARGET"
        rr "after / before, service incremental (wall)" "$(ratio "$AFTER_INCR_WALL" "$BEFORE_INCR_WALL")" "<= $INTAKE_TARGET" "$INTAKE_TARGET"
        rr "after / before, service incremental (job duration)" "$(ratio "$AFTER_INCR_JOB" "$BEFORE_INCR_JOB")" "<= $INTAKE_TARGET" "$INTAKE_TARGET"
        rr "service (before) / local qcow2, full (wall)" "$(ratio "$BEFORE_FULL_WALL" "$L_FULL_SEC")" "-"
        rr "service (before) / local qcow2, incremental (wall)" "$(ratio "$BEFORE_INCR_WALL" "$L_INCR_SEC")" "-"
    fi
    echo
    echo "incremental reads: local qcow2 $(mb "$L_INCR_READ") ($(incr_kind "$L_INCR_READ")), service $(mb "$AFTER_INCR_READ") ($(incr_kind "$AFTER_INCR_READ"))$(
        [[ -n $BEFORE ]] && echo ", service (before) $(mb "$BEFORE_INCR_READ") ($(incr_kind "$BEFORE_INCR_READ"))"); change $(mb "$CHANGED")"
    echo "stored: local qcow2 full $(mb "$L_FULL_STORED"), incremental $(mb "$L_INCR_STORED"); service full $(mb "$AFTER_FULL_STORED"), incremental $(mb "$AFTER_INCR_STORED")$(
        [[ -n $BEFORE ]] && echo "; before: full $(mb "$BEFORE_FULL_STORED"), incremental $(mb "$BEFORE_INCR_STORED")")"
    echo "peak memory: local $(mib_rss "$T_PEAK_KIB") (max RSS of repo backup); service $AFTER_RSS$([[ -n $BEFORE ]] && echo "; before: $BEFORE_RSS")"
    echo "noise over all measured steps: $(secs "$(calc "$SUM_OTHERS + $SUM_STEAL")") of CPU used by other processes or stolen by the"
    echo "hypervisor, in $(secs "$SUM_SEC") of wall time ($(nproc) cores).$(
        [[ $(calc "($SUM_OTHERS + $SUM_STEAL) > 0.05 * $SUM_SEC * $(nproc)") == 1 ]] &&
            echo " NOISY: rerun on an idle machine before quoting.")"
    echo
    echo "wall: local: the command (GNU time); service: from backup-now to the end of job wait. job: the job's"
    echo "duration (job show). engine: the backup's own time (the point's stats.duration_ms). CPU: user+system"
    echo "seconds of tresor (service: server + agent, with qemu-nbd). noise: CPU others used meanwhile + steal."
    echo "stored: growth of the repository's objects; read: bytes the backup read; MB = 10^6 bytes."
} >"$WORK/summary.txt"
echo
cat "$WORK/summary.txt"
say "logs in $LOGS; summary in $WORK/summary.txt"
