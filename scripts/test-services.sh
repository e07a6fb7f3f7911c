#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on 127.0.0.1, on free ports, for the test suite.
#
#   scripts/test-services.sh start    stop stale ones, start both, wait until they answer,
#                                     print the export lines (stdout) for eval
#   scripts/test-services.sh env      print the export lines of the running services
#   scripts/test-services.sh status   exit 0 when both answer, 1 otherwise
#   scripts/test-services.sh stop     stop both and remove their temp dir (no-op if none)
#
# Data lives in a fresh temp dir under ${TMPDIR:-/tmp}; the repo's .test-services/state
# records where, so `stop` (and the next `start`) can always find and clean it up.
# PostgreSQL refuses to run as root: as root, initdb/pg_ctl run as the `postgres` user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${IDP_TEST_SERVICES_STATE_DIR:-$ROOT/.test-services}"
STATE_FILE="$STATE_DIR/state"
TIMEOUT="${IDP_TEST_SERVICES_TIMEOUT:-60}"
PG_USER=idp
PG_DB=idp_test

log() { echo "test-services: $*" >&2; }
die() { log "$*"; exit 1; }

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# Run a PostgreSQL server tool: as `postgres` when we are root, else as ourselves.
# Runs from the work dir so the tool never trips over an unreadable cwd.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "${WORK:-/}" 2>/dev/null || cd /; runuser -u postgres -- "$@")
    else
        (cd "${WORK:-/}" 2>/dev/null || cd /; "$@")
    fi
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

wait_pid_gone() { # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        pid_alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

print_env() {
    echo "export IDP_TEST_DATABASE_URL=postgresql+psycopg://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB"
    echo "export IDP_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

load_state() {
    [ -f "$STATE_FILE" ] || return 1
    WORK="" PG_PORT="" REDIS_PORT="" PGBIN=""
    # shellcheck disable=SC1090
    . "$STATE_FILE"
}

save_state() {
    mkdir -p "$STATE_DIR"
    {
        printf 'WORK=%q\n' "$WORK"
        printf 'PGBIN=%q\n' "${PGBIN:-}"
        printf 'PG_PORT=%q\n' "${PG_PORT:-}"
        printf 'REDIS_PORT=%q\n' "${REDIS_PORT:-}"
    } >"$STATE_FILE.tmp"
    mv "$STATE_FILE.tmp" "$STATE_FILE"
}

stop_redis() {
    local pidfile="$WORK/redis/redis.pid" pid=""
    [ -f "$pidfile" ] && pid="$(cat "$pidfile" 2>/dev/null || true)"
    pid_alive "$pid" || return 0
    if [ -n "$REDIS_PORT" ] && command -v redis-cli >/dev/null 2>&1; then
        timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    wait_pid_gone "$pid" 10 && return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 && return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || log "warning: redis (pid $pid) would not die"
}

stop_postgres() {
    local data="$WORK/pg/data" pid=""
    [ -f "$data/postmaster.pid" ] && pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
    pid_alive "$pid" || return 0
    if [ -n "$PGBIN" ] && [ -x "$PGBIN/pg_ctl" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 20 stop >/dev/null 2>&1 || true
    fi
    wait_pid_gone "$pid" 5 && return 0
    kill -QUIT "$pid" 2>/dev/null || true # immediate shutdown
    wait_pid_gone "$pid" 5 && return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || log "warning: postgres (pid $pid) would not die"
}

cmd_stop() {
    load_state || return 0
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        stop_redis
        stop_postgres
        case "$WORK" in
            */idp-test-services.*) rm -rf -- "$WORK" ;;
            *) log "warning: not removing unexpected work dir $WORK" ;;
        esac
    fi
    rm -f "$STATE_FILE"
    rmdir "$STATE_DIR" 2>/dev/null || true
}

show_log() { # file
    [ -f "$1" ] || return 0
    log "last lines of $1:"
    tail -n 30 "$1" >&2 || true
}

start_postgres() {
    PGBIN="$(pg_bindir)"
    [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] \
        || die "PostgreSQL server not found under /usr/lib/postgresql/*/bin (run: make system-deps)"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user (run: make system-deps)"
        command -v runuser >/dev/null 2>&1 || die "runuser not found (util-linux)"
    fi

    local pgdir="$WORK/pg"
    mkdir -p "$pgdir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pgdir"
    chmod 700 "$pgdir"

    if ! as_pg "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --no-locale \
            --no-sync >"$WORK/initdb.log" 2>&1; then
        show_log "$WORK/initdb.log"
        die "initdb failed"
    fi
    # Loopback TCP plus a private socket dir; durability off, this data is thrown away.
    cat >>"$pgdir/data/postgresql.conf" <<CONF

# --- idp test services ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pgdir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
CONF
    save_state
    if ! as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t "$TIMEOUT" \
            start >/dev/null 2>&1; then
        show_log "$pgdir/postgres.log"
        die "PostgreSQL did not start on 127.0.0.1:$PG_PORT"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
        if ((SECONDS >= deadline)); then
            show_log "$pgdir/postgres.log"
            die "PostgreSQL not accepting connections on 127.0.0.1:$PG_PORT after ${TIMEOUT}s"
        fi
        sleep 0.2
    done
    if ! PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
            -U postgres -d postgres \
            -c "CREATE ROLE $PG_USER LOGIN CREATEDB" \
            -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >"$WORK/psql.log" 2>&1; then
        show_log "$WORK/psql.log"
        die "could not create role $PG_USER / database $PG_DB"
    fi
}

start_redis() {
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run: make system-deps)"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (run: make system-deps)"
    local rdir="$WORK/redis"
    mkdir -p "$rdir"
    if ! redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize yes --dir "$rdir" --pidfile "$rdir/redis.pid" \
            --logfile "$rdir/redis.log" >"$WORK/redis-start.log" 2>&1; then
        show_log "$WORK/redis-start.log"
        die "redis-server failed to start"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
        if ((SECONDS >= deadline)); then
            show_log "$rdir/redis.log"
            die "Redis not answering PING on 127.0.0.1:$REDIS_PORT after ${TIMEOUT}s"
        fi
        sleep 0.1
    done
}

cmd_start() {
    cmd_stop # stale services from an earlier run
    # A start that fails half-way leaves nothing running behind it.
    trap 'rc=$?; if [ "$rc" -ne 0 ]; then cmd_stop; fi; exit "$rc"' EXIT
    command -v python3 >/dev/null 2>&1 || die "python3 not found"

    WORK="$(mktemp -d "${TMPDIR:-/tmp}/idp-test-services.XXXXXX")"
    chmod 755 "$WORK" # the postgres user must reach its data dir inside
    PGBIN="" PG_PORT="" REDIS_PORT=""
    save_state # from here on, `stop` can clean up whatever got started

    PG_PORT="$(free_port)"
    REDIS_PORT="$(free_port)"
    while [ "$REDIS_PORT" = "$PG_PORT" ]; do REDIS_PORT="$(free_port)"; done
    save_state

    start_postgres
    start_redis
    trap - EXIT
    print_env
}

cmd_env() {
    load_state && [ -n "$PG_PORT" ] && [ -n "$REDIS_PORT" ] || die "not running (use: $0 start)"
    print_env
}

cmd_status() {
    load_state && [ -n "$PG_PORT" ] && [ -n "$REDIS_PORT" ] || { log "not running"; return 1; }
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 || { log "postgres not answering"; return 1; }
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] \
        || { log "redis not answering"; return 1; }
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
