#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each (default 60),
# or only the targets named after it: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz when missing. Runs on the stable toolchain: cargo-fuzz needs
# nightly flags (-Zsanitizer), which RUSTC_BOOTSTRAP=1 allows. The seed corpus of a
# target is fuzz/corpus/TARGET (committed); what libFuzzer finds goes to
# fuzz/target/work/TARGET (not committed), crashes to fuzz/artifacts/TARGET.
# Prints per target how long it ran and whether it crashed; exits 1 on any crash
# (a panic, an allocation above the RSS limit, or an input running over 10 s).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked || exit 2
fi
export RUSTC_BOOTSTRAP=1

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Build first, so that the time of each target is fuzzing, not compiling.
mkdir -p target
if ! cargo fuzz build >target/build.log 2>&1; then
    tail -30 target/build.log >&2
    echo "fuzz targets do not build (fuzz/target/build.log)" >&2
    exit 2
fi

# Run the built binaries directly: `cargo fuzz run` would rebuild first, and the
# sources may change while a long run goes on.
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "target/work/$t" "corpus/$t" "artifacts/$t"
    log="target/fuzz-$t.log"
    start=$(date +%s)
    "$bin_dir/$t" "target/work/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ "$rc" -eq 0 ]; then
        line="$t: ran ${took}s, ${runs:-?} inputs, no crash"
    else
        failed=1
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
        line="$t: CRASH after ${took}s (exit $rc): ${artifact:-see fuzz/$log}"
        grep -m1 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/    /'
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
