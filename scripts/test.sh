#!/usr/bin/env bash
# The test command: formatting, lints, and the whole test suite in release mode (boa's parser
# needs release-mode stack frames, and the workers the tests start are the release binary).
# Later issues add database servers here; this script provisions everything it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --release --all-targets -- -D warnings

echo "==> cargo test --release"
cargo test --release
