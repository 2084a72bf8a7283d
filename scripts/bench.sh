#!/usr/bin/env bash
# Benchmarks (never part of the test suite): builds the release binary and prints the table
# that the README's "Measured numbers" section reports.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin customdb
cargo bench --bench overhead
# The driver benchmarks need the database servers; start private ones as the tests do.
source scripts/services.sh
cargo bench --bench drivers
cargo bench --bench http
cargo bench --bench tenants
cargo bench --bench io
