#!/usr/bin/env bash
# A real PostgreSQL (Debian's postgresql, 15 on Debian 12) on 127.0.0.1 for
# the database store's tests and the many-workers scenarios.
#
#   scripts/postgres.sh install   apt-get install postgresql (no service started)
#   scripts/postgres.sh start     initdb into $POP3_POSTGRES_DIR (default /tmp/pop3-postgres) and start it
#   scripts/postgres.sh stop      stop it (pg_ctl on its own data folder, never by name)
#
# `start` writes $POP3_POSTGRES_DIR/env, which the tests read: `url`, a
# database the role `pop3` owns; the role may create databases, so each
# test makes one of its own. Port 5544, 127.0.0.1 only, password auth
# (scram-sha-256). The server stops by itself after $POP3_POSTGRES_TTL
# seconds (default 5400).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DIR=${POP3_POSTGRES_DIR:-/tmp/pop3-postgres}
TTL=${POP3_POSTGRES_TTL:-5400}
PORT=5544
PASSWORD=pop3-test-pass

bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$dir" ] && echo "$dir"
}

install() {
    if [ -n "$(bindir)" ]; then
        return 0
    fi
    apt_install postgresql
}

# as_postgres CMD...: PostgreSQL refuses to run as root.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    install
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    mkdir -p "$DIR/data" "$DIR/run"
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$DIR"; fi
    local bin
    bin=$(bindir)
    printf '%s\n' "$PASSWORD" > "$DIR/run/pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres "$DIR/run/pwfile"; fi
    as_postgres "$bin/initdb" -D "$DIR/data" -U pop3 --pwfile="$DIR/run/pwfile" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2
        exit 1
    }
    rm -f "$DIR/run/pwfile"
    cat >> "$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR/run'
max_connections = 400
fsync = on
CONF
    as_postgres "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null || {
        cat "$DIR/server.log" >&2
        exit 1
    }
    if ! wait_listening "$PORT"; then
        echo "postgres did not start:" >&2
        cat "$DIR/server.log" >&2 || true
        exit 1
    fi
    PGPASSWORD=$PASSWORD "$bin/psql" -h 127.0.0.1 -p "$PORT" -U pop3 -d postgres -q \
        -c "CREATE DATABASE pop3 OWNER pop3" >/dev/null
    # Stop by itself, whatever happens to the caller: this data folder's
    # server only, and only if it is still the one started here.
    local pid
    pid=$(head -1 "$DIR/data/postmaster.pid")
    nohup setsid bash -c "sleep $TTL; if [ \"\$(head -1 '$DIR/data/postmaster.pid' 2>/dev/null)\" = $pid ]; then rm -f '$DIR/env'; kill -INT $pid; fi" >/dev/null 2>&1 &
    echo $! > "$DIR/run/watchdog"
    cat > "$DIR/env" <<ENV
url=postgres://pop3:$PASSWORD@127.0.0.1:$PORT/pop3
admin_url=postgres://pop3:$PASSWORD@127.0.0.1:$PORT/postgres
ENV
    echo "postgres: listening on 127.0.0.1:$PORT; env in $DIR/env"
}

stop() {
    if [ -s "$DIR/run/watchdog" ]; then
        kill -- "-$(cat "$DIR/run/watchdog")" 2>/dev/null || true
        rm -f "$DIR/run/watchdog"
    fi
    local bin
    bin=$(bindir) || true
    if [ -n "$bin" ] && [ -s "$DIR/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -f "$DIR/env"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 install|start|stop" >&2
        exit 2
        ;;
esac
