#!/usr/bin/env bash
# The test command: formatting, lints, and the whole test suite in release mode (boa's parser
# needs release-mode stack frames, and the workers the tests start are the release binary).
# It provisions what the suite needs from nothing: a private PostgreSQL cluster and a private
# MariaDB server (installed from Debian's packages when missing), both on loopback with
# throwaway data folders, stopped again on exit. The tests find them through
# CUSTOMDB_TEST_PG and CUSTOMDB_TEST_MYSQL; a database test without them fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --release --all-targets -- -D warnings

services=$(mktemp -d /tmp/customdb-services.XXXXXX)
stop_services() {
    if [ -f "$services/mariadb.pid" ]; then kill "$(cat "$services/mariadb.pid")" 2>/dev/null || true; fi
    # SIGQUIT is PostgreSQL's immediate shutdown; the cluster is thrown away anyway.
    if [ -f "$services/pg/postmaster.pid" ]; then kill -QUIT "$(head -1 "$services/pg/postmaster.pid")" 2>/dev/null || true; fi
    sleep 1
    rm -rf "$services"
}
trap stop_services EXIT

echo "==> starting PostgreSQL and MariaDB on loopback (data in $services)"
CUSTOMDB_TEST_PG=$(scripts/start-postgres.sh "$services")
CUSTOMDB_TEST_MYSQL=$(scripts/start-mariadb.sh "$services")
export CUSTOMDB_TEST_PG CUSTOMDB_TEST_MYSQL
echo "    PostgreSQL: $CUSTOMDB_TEST_PG"
echo "    MariaDB:    $CUSTOMDB_TEST_MYSQL"

echo "==> cargo test --release"
cargo test --release
