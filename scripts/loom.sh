#!/usr/bin/env bash
# Model-checks the lock-free paths (budget accounting, the pool's reference units and return path, the executor's
# run-slot gate and abort registry, the shared waker slab, and any other
# `loom_*` test) with loom. Builds with `--cfg tidegate_loom` into its own target directory so it does not
# invalidate the normal build. Usage: scripts/loom.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg tidegate_loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
cargo test --lib --release loom "$@"
