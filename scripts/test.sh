#!/usr/bin/env bash
# The whole test suite: installs what the tests need (when run as root), then checks
# formatting and lints and runs every test of the workspace. Ends with one line
# "N passed, M failed" summing all test binaries.
#
#   scripts/test.sh          everything (the README's and CI's command)
#   scripts/test.sh --fast   the inner loop: formatting, every unit test and the
#                            in-process integration tests (a server on a free port,
#                            no QEMU, no browser); under two minutes after a build
# Further arguments go to `cargo test` (a test name filter, say).
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi

# The integration tests that need neither QEMU nor a browser (nor libvirtd: the
# libvirt tests, tresor-libvirt's `discovery`, run only in the full suite).
in_process=(
  architecture serve_shutdown api_rules access access_items audit users tokens resource_guard
  protection portal_roles portal_guards portal_vm
  soft_delete immutability destroy hostile_agent hostile_http scheduler excluded_disks
  client env_proxy intake pipeline replicate golden sqlite hostile_peers
  identity_and_pinning
)

if [ "$fast" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
  scripts/install-deps.sh
fi
cargo fmt --all -- --check
if [ "$fast" -eq 0 ]; then
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
if [ "$fast" -eq 1 ]; then
  targets=(--lib --bins)
  for t in "${in_process[@]}"; do targets+=(--test "$t"); done
  cargo test --workspace "${targets[@]}" "$@" 2>&1 | tee "$log" || status=$?
else
  cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
