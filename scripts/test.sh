#!/usr/bin/env bash
# The test command from the README: every target (unit, integration, examples, benches once each) and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
cargo test --doc
