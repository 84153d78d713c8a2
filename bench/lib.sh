# bench/lib.sh: shell helpers the benchmark scripts share. Sourced, never run:
#
#   BENCH_NAME=compare        # prefix of error messages ("compare: error: ...")
#   source "$HERE/lib.sh"
#
# The caller sets, before it calls the helpers that use them: LOGS (folder of the step
# logs), STEP_TIMEOUT (seconds a step may take), BENCH_CACHE (cold or warm, for
# `setup_cache` and `prepare`).
# shellcheck shell=bash

PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
HZ=$(getconf CLK_TCK)

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf '%s: error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2
    exit 1
}

# --------------------------------------------------------------------- small helpers
calc() { awk "BEGIN { printf \"%s\", ($1) }"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1e3 }'; }
secs() { awk -v s="$1" 'BEGIN { printf "%.2f s", s }'; }
mib_rss() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
mibs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f MiB/s", b / 1048576 / s; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
bytes_of() { du -sb "$1" | cut -f1; }
# json EXPR: evaluates a Python expression over the JSON on stdin (`d`); prints it.
json() { "$PY" -c "import json, sys; d = json.load(sys.stdin); v = ($1); print('' if v is None else v)"; }
# seconds_between T0 T1: RFC 3339 times (nanoseconds allowed) -> T1 - T0, seconds.
seconds_between() {
    "$PY" - "$1" "$2" <<'EOF'
import datetime, re, sys
def parse(t):
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", t.strip())
    if not m:
        raise SystemExit(f"not an RFC 3339 time: {t!r}")
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)
print(f"{parse(sys.argv[2]) - parse(sys.argv[1]):.2f}")
EOF
}
# A free TCP port on 127.0.0.1.
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# stop_pid PID: TERM, then KILL after 10 s; waits for it.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# GNU time is Debian's package `time` (the shell keyword cannot report max RSS).
need_gnu_time() {
    if [[ ! -x /usr/bin/time ]]; then
        say "installing Debian's 'time' package for /usr/bin/time (max RSS)"
        apt-get install -y time >/dev/null || die "/usr/bin/time missing: apt-get install -y time"
    fi
}

# ------------------------------------------------------------------------ step timing
# cpu_ticks: busy ticks of the whole machine (user, nice, system, irq, softirq) and
# ticks stolen by the hypervisor, from /proc/stat.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# machine_busy: the share of one core the whole machine used or lost to the
# hypervisor over 2 s, as a fraction (the load average would still remember a
# previous run).
machine_busy() {
    local b0 s0 b1 s1
    read -r b0 s0 < <(cpu_ticks)
    sleep 2
    read -r b1 s1 < <(cpu_ticks)
    calc "($b1 - $b0 + $s1 - $s0) / $HZ / 2"
}

# timed NAME CMD...: runs CMD (stdin /dev/null, stdout/stderr into $LOGS/NAME.out/.err)
# bounded by STEP_TIMEOUT, measured by GNU time. Sets T_SEC (wall clock, s) and T_KIB
# (max RSS, KiB); SEC is T_SEC too. The command runs as a background job so that Ctrl-C
# (the caller's trap) can stop it: `timeout` puts itself and the command in their own
# process group, and kills that whole group on time-out or when it is sent SIGTERM
# (the caller's cleanup sends it to CUR_PID).
# Also sets T_CPU (the command's user+sys CPU seconds), T_OTHERS (CPU seconds the rest
# of the machine used meanwhile) and T_STEAL (seconds the hypervisor gave away): noise.
T_SEC=
T_KIB=
T_CPU=
T_OTHERS=
T_STEAL=
SEC=
CUR_PID=
timed() {
    local name=$1
    shift
    local tf=$LOGS/$name.time rc=0 b0 s0 b1 s1 u sy
    read -r b0 s0 < <(cpu_ticks)
    timeout -k 30 "$STEP_TIMEOUT" /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" \
        </dev/null >"$LOGS/$name.out" 2>"$LOGS/$name.err" &
    CUR_PID=$!
    wait "$CUR_PID" || rc=$?
    CUR_PID=
    if ((rc != 0)); then
        {
            if ((rc == 124 || rc == 137)); then
                echo "${BENCH_NAME:-bench}: error: step '$name' took longer than STEP_TIMEOUT=$STEP_TIMEOUT s and was stopped"
            else
                echo "${BENCH_NAME:-bench}: error: step '$name' failed (exit status $rc): $*"
            fi
            echo "--- last lines of $LOGS/$name.err:"
            tail -n 20 "$LOGS/$name.err"
            echo "--- last lines of $LOGS/$name.out:"
            tail -n 5 "$LOGS/$name.out"
        } >&2
        exit 1
    fi
    read -r b1 s1 < <(cpu_ticks)
    read -r T_SEC T_KIB u sy < <(tail -n 1 "$tf")
    SEC=$T_SEC
    T_CPU=$(calc "$u + $sy")
    T_OTHERS=$(calc "sprintf(\"%.2f\", ($b1 - $b0) / $HZ - $T_CPU < 0 ? 0 : ($b1 - $b0) / $HZ - $T_CPU)")
    T_STEAL=$(calc "($s1 - $s0) / $HZ")
}

# Every measured step, for a table of commands; peak RSS per tool; noise totals.
declare -a CMD_ROWS=()
T_PEAK_KIB=0
R_PEAK_KIB=0
SUM_SEC=0 SUM_OTHERS=0 SUM_STEAL=0
note_step() { # TOOL LABEL (after a timed step)
    CMD_ROWS+=("$(printf '  %-6s %-42s %9s %9s %9s %10s' "$1" "$2" "$(secs "$T_SEC")" \
        "$(secs "$T_CPU")" "$(secs "$(calc "$T_OTHERS + $T_STEAL")")" "$(mib_rss "$T_KIB")")")
    if [[ $1 == tresor ]]; then
        ((T_KIB > T_PEAK_KIB)) && T_PEAK_KIB=$T_KIB
    else
        ((T_KIB > R_PEAK_KIB)) && R_PEAK_KIB=$T_KIB
    fi
    SUM_SEC=$(calc "$SUM_SEC + $T_SEC")
    SUM_OTHERS=$(calc "$SUM_OTHERS + $T_OTHERS")
    SUM_STEAL=$(calc "$SUM_STEAL + $T_STEAL")
    return 0
}

# ------------------------------------------------------------------ page cache handling
drop_caches() { sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; }

# setup_cache: checks BENCH_CACHE (cold or warm), falls back to warm when the page
# cache cannot be dropped; sets CACHE_NOTE.
CACHE_NOTE=
setup_cache() {
    if [[ $BENCH_CACHE == cold ]]; then
        if drop_caches; then
            CACHE_NOTE="cold cache (page cache dropped before each timed step)"
        else
            BENCH_CACHE=warm
            CACHE_NOTE="warm cache: dropping the page cache failed here; each timed step's input is read once before it"
        fi
    elif [[ $BENCH_CACHE == warm ]]; then
        CACHE_NOTE="warm cache (BENCH_CACHE=warm): each timed step's input is read once before it"
    else
        die "BENCH_CACHE must be cold or warm, not $BENCH_CACHE"
    fi
}

# prepare PATH...: before a timed step: drop the page cache, or (warm mode) read the
# step's inputs once: files, or every file under folders; only data extents of sparse
# files are read (a 1 TiB sparse file is not read as 1 TiB of zeros).
prepare() {
    if [[ $BENCH_CACHE == cold ]]; then
        drop_caches || die "dropping the page cache stopped working"
        return
    fi
    sync
    "$PY" - "$@" <<'EOF'
import os, sys
def warm(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size, off = os.fstat(fd).st_size, 0
        while off < size:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
                end = os.lseek(fd, off, os.SEEK_HOLE)
            except OSError:
                break
            while off < end:
                n = len(os.pread(fd, min(8 << 20, end - off), off))
                if n == 0:
                    break
                off += n
    finally:
        os.close(fd)
for p in sys.argv[1:]:
    if os.path.isdir(p):
        for d, _, files in os.walk(p):
            for f in files:
                warm(os.path.join(d, f))
    else:
        warm(p)
EOF
}

# rp_id_from FILE: the recovery point id tresor printed as the last line of FILE.
rp_id_from() {
    local id
    id=$(tail -n 1 "$1" | tr -d '\r' | sed 's/[[:space:]]*$//')
    [[ $id =~ ^[A-Za-z0-9._:+-]+$ ]] ||
        die "tresor did not print a recovery point id as the last line of stdout (got '$id'; see $1)"
    echo "$id"
}

# Dies unless the work folder has more than $1 GiB free.
need_free_gib() {
    local avail_kib
    avail_kib=$(df --output=avail -k "$WORK" | tail -n 1)
    ((avail_kib > $1 * 1024 * 1024)) || die "less than $1 GiB free under $WORK"
}

# Sets TRESOR: $TRESOR_BIN, or a release build of this checkout (timed as a step).
find_tresor() {
    if [[ -n ${TRESOR_BIN:-} ]]; then
        TRESOR=$TRESOR_BIN
    else
        say "building tresor: cargo build --release -p tresor (in $ROOT)"
        timed cargo-build cargo build --manifest-path "$ROOT/Cargo.toml" --release -p tresor
        TRESOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/tresor
    fi
    [[ -x $TRESOR ]] || die "no tresor binary at $TRESOR (set TRESOR_BIN)"
}
