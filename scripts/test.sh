#!/usr/bin/env bash
# The test command: formatting, lints, and the whole test suite in release mode (boa's parser
# needs release-mode stack frames, and the workers the tests start are the release binary).
# It provisions what the suite needs from nothing: a private PostgreSQL cluster and a private
# MariaDB server (installed from Debian's packages when missing), both on loopback with
# throwaway data folders, stopped again on exit. The tests find them through
# CUSTOMDB_TEST_PG and CUSTOMDB_TEST_MYSQL; a database test without them fails, never skips.
# It also installs the official clients the compatibility suite drives (scripts/sdk.sh:
# auth0-python from PyPI, the auth0 and openid-client npm packages, all pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --release --all-targets -- -D warnings

source scripts/services.sh

echo "==> official clients (scripts/sdk.sh)"
scripts/sdk.sh

echo "==> cargo test --release"
cargo test --release
