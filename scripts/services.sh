# Sourced by test.sh and bench.sh: starts a private PostgreSQL cluster and MariaDB server on
# loopback (installing them from Debian's packages when missing), exports CUSTOMDB_TEST_PG and
# CUSTOMDB_TEST_MYSQL, and stops both when the calling script exits.
services=$(mktemp -d /tmp/customdb-services.XXXXXX)
stop_services() {
    if [ -f "$services/mariadb/mysqld.pid" ]; then kill "$(cat "$services/mariadb/mysqld.pid")" 2>/dev/null || true; fi
    # SIGQUIT is PostgreSQL's immediate shutdown; the cluster is thrown away anyway.
    if [ -f "$services/postgres/data/postmaster.pid" ]; then kill -QUIT "$(head -1 "$services/postgres/data/postmaster.pid")" 2>/dev/null || true; fi
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
