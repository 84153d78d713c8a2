#!/usr/bin/env bash
# The whole test suite: installs what the tests need (when run as root), then runs
# every test of the workspace, formatting and lint checks included.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  scripts/install-deps.sh
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace "$@"
