#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for the tests and prints its URL on stdout.
#   scripts/start-postgres.sh DIR      -> cluster in DIR/postgres/data, log DIR/postgres/server.log
# Stop it with: pg_ctl -D DIR/postgres/data stop (scripts/services.sh does that on exit).
# The server binaries (initdb, pg_ctl, postgres) come from the machine image or Debian's
# postgresql package, which this script installs when they are missing.
set -euo pipefail
dir=$(realpath "$1")
here=$(dirname "$0")

if ! command -v initdb >/dev/null; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$pgbin" ]; then
        echo "PostgreSQL is not installed; installing Debian's postgresql package" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    export PATH="$pgbin:$PATH"
fi

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Everything lives in DIR/postgres, owned by the server's user; DIR itself only needs to be
# traversable (other servers keep their own folders beside it).
base="$dir/postgres"
mkdir -p "$base"
if [ "$(id -u)" = 0 ]; then chmod 711 "$dir"; chown postgres "$base"; fi
as_pg sh -c "echo customdb > '$base/pw'"
as_pg initdb -D "$base/data" -U postgres --pwfile="$base/pw" --auth-host=scram-sha-256 \
    --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/postgres-initdb.log" 2>&1 \
    || { cat "$dir/postgres-initdb.log" >&2; exit 1; }
port=$("$here/free-port.sh")
as_pg pg_ctl -D "$base/data" -l "$base/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $base -c fsync=off -c max_connections=200" \
    start >&2 || { cat "$base/server.log" >&2; exit 1; }
echo "postgres://postgres:customdb@127.0.0.1:$port/postgres"
