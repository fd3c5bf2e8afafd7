#!/usr/bin/env bash
# Runs the library and buffer tests under AddressSanitizer (which includes LeakSanitizer) with the nightly
# toolchain: use-after-free or double free in the pool's reference units, or storage never freed, fail the run.
# Usage: scripts/sanitizers.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}"
export RUSTDOCFLAGS="-Zsanitizer=address"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/asan"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
# --target keeps build scripts and proc macros uninstrumented; the tracking-allocator test replaces the allocator
# ASan hooks, so it runs in the normal suite only.
cargo +nightly test --target "$target" --lib --test pool --test budget --test exec --test conn_group --test conn_connection "$@"
