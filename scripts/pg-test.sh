#!/bin/sh
# A throwaway PostgreSQL for tests and benchmarks: a fresh cluster in a
# temporary directory, run as the unprivileged "postgres" user (or the
# current user when not root), listening on 127.0.0.1 at a free port.
#   scripts/pg-test.sh start DIR   -> prints the store URL
#   scripts/pg-test.sh stop DIR
set -eu
cmd=$1
dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "pg-test: PostgreSQL is not installed (make deps-test)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The cluster lives in its own directory under /tmp (DIR may sit below a
# directory the postgres user cannot enter); DIR/cluster remembers where.
case "$cmd" in
start)
    mkdir -p "$dir"
    pgdir=$(mktemp -d "${TMPDIR:-/tmp}/tandem-pg.XXXXXX")
    chmod 755 "$pgdir"
    [ "$(id -u)" -ne 0 ] || chown postgres "$pgdir"
    echo "$pgdir" >"$dir/cluster"
    dir=$pgdir
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=on" \
        start >/dev/null
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    [ -f "$dir/cluster" ] || exit 0
    pgdir=$(cat "$dir/cluster")
    [ -d "$pgdir/data" ] && as_pg "$bin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$pgdir" "$dir/cluster"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
