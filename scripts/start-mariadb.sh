#!/usr/bin/env bash
# Starts a private MariaDB server for the tests and prints its URL on stdout.
#   scripts/start-mariadb.sh DIR      -> data in DIR/mariadb/data, socket DIR/mariadb/mysqld.sock
# Stop it with: kill "$(cat DIR/mariadb/mysqld.pid)" (scripts/services.sh does that on exit).
# Installs Debian's mariadb-server package when the server is missing (CI machines lack it).
set -euo pipefail
dir=$(realpath "$1")
here=$(dirname "$0")

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    echo "MariaDB is not installed; installing Debian's mariadb-server package" >&2
    apt-get update -qq >&2
    # The package's own service must not start: policy-rc.d says no to every init script.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq mariadb-server >&2
fi
export PATH="/usr/sbin:$PATH"

user=$(id -un)
[ "$(id -u)" = 0 ] && user=mysql
# Everything lives in DIR/mariadb, owned by the server's user; DIR itself only needs to be
# traversable (other servers keep their own folders beside it).
base="$dir/mariadb"
mkdir -p "$base"
if [ "$(id -u)" = 0 ]; then chmod 711 "$dir"; chown "$user" "$base"; fi
mariadb-install-db --no-defaults --user="$user" --datadir="$base/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$dir/mariadb-install.log" 2>&1 \
    || { cat "$dir/mariadb-install.log" >&2; exit 1; }
port=$("$here/free-port.sh")
mariadbd --no-defaults --user="$user" --datadir="$base/data" --socket="$base/mysqld.sock" \
    --pid-file="$base/mysqld.pid" --port="$port" --bind-address=127.0.0.1 \
    --innodb-flush-log-at-trx-commit=0 --max-connections=300 \
    --log-error="$base/server.log" >/dev/null 2>&1 &
for _ in $(seq 1 120); do
    if mariadb --no-defaults -S "$base/mysqld.sock" -u root -e 'SELECT 1' >/dev/null 2>&1; then
        break
    fi
    sleep 0.5
done
mariadb --no-defaults -S "$base/mysqld.sock" -u root -e "
    CREATE DATABASE customdb;
    CREATE USER 'customdb'@'127.0.0.1' IDENTIFIED BY 'customdb';
    GRANT ALL ON *.* TO 'customdb'@'127.0.0.1';" \
    || { echo "MariaDB did not start:" >&2; cat "$base/server.log" >&2; exit 1; }
echo "mysql://customdb:customdb@127.0.0.1:$port/customdb"
