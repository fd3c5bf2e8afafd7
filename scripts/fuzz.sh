#!/usr/bin/env bash
# Runs every codec fuzz target for N seconds each (default 60) with nightly Rust and cargo-fuzz.
# Usage: scripts/fuzz.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(length delimiter line capped)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    # rss_limit/malloc_limit turn any allocation sized from a peer's claim into a crash.
    cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=64
done
