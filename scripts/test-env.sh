#!/usr/bin/env bash
# Runs a command with the test dependencies the project's tests need, on loopback:
#
#   scripts/test-env.sh -- <command...>
#
# - PostgreSQL: unless DATABASE_URL is set, starts a throwaway server (Debian's packages,
#   installed with apt-get if missing) in a temporary directory, and exports
#   DATABASE_URL=postgres://motcua:<password>@127.0.0.1:<port>/motcua (a superuser, so tests
#   can create databases of their own).
# - A Kafka-protocol broker: unless KAFKA_BROKERS is set, starts Tansu 0.6.0 with in-memory
#   storage (built once with cargo install into ${MOTCUA_CACHE_DIR:-$HOME/.cache/motcua}), and
#   exports KAFKA_BROKERS=127.0.0.1:<port>.
#
# A preset DATABASE_URL / KAFKA_BROKERS is used as given and nothing is started for it. The
# value "skip" provides nothing instead: the variable is unset and its MOTCUA_REQUIRE_* is not
# set, so those tests skip (an explicit, visible opt-out). Otherwise the command runs with
# MOTCUA_REQUIRE_POSTGRES=1 and MOTCUA_REQUIRE_KAFKA=1, so no test can silently skip.
#
# Whatever the script started is stopped and its temporary files removed when it exits, also
# on INT/TERM: the command runs in a process group of its own, and a signal to the script is
# passed on to that whole group (cargo and the test binaries it runs) before cleaning up. The
# script exits with the command's status (130/143 when interrupted).

set -euo pipefail

readonly TANSU_VERSION=0.6.0
readonly STARTUP_TIMEOUT=60

log() { printf 'test-env: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    printf 'usage: %s -- <command...>\n' "$0" >&2
    exit 2
}

if [[ ${1:-} == "--" ]]; then
    shift
fi
(($# > 0)) || usage

WORK_DIR=""
PG_BIN=""
PG_DATA=""
PG_STARTED=0
BROKER_PID=""
TANSU_STAGING=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $BROKER_PID ]]; then
        log "stopping the Kafka-protocol broker (pid $BROKER_PID)"
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    if ((PG_STARTED)); then
        log "stopping PostgreSQL"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [[ -n $TANSU_STAGING ]]; then
        rm -rf -- "$TANSU_STAGING"
    fi
    if [[ -n $WORK_DIR ]]; then
        rm -rf -- "$WORK_DIR"
    fi
    exit "$status"
}
CMD_PID=""

# shellcheck disable=SC2317  # invoked by the INT and TERM traps
interrupted() {
    local signal=$1 status=$2
    if [[ -n $CMD_PID ]]; then
        log "received SIG$signal; stopping the command"
        kill -"$signal" -- "-$CMD_PID" 2>/dev/null || true
        wait "$CMD_PID" 2>/dev/null || true
        CMD_PID=""
    fi
    exit "$status"
}

trap cleanup EXIT
trap 'interrupted INT 130' INT
trap 'interrupted TERM 143' TERM

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/motcua-test-env.XXXXXX")
# The PostgreSQL server user must be able to reach its directory inside.
chmod 0711 "$WORK_DIR"

# A TCP port on 127.0.0.1 that nobody listens on now.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return
    fi
    local port attempt
    for attempt in $(seq 1 100); do
        port=$((20000 + (RANDOM * 32768 + RANDOM + attempt) % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "found no free TCP port on 127.0.0.1"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

random_secret() {
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n'
}

# --- PostgreSQL -------------------------------------------------------------------------------

PG_USER=""

# Runs a command as the user that owns the server: postgres refuses to run as root.
as_pg() {
    if [[ -n $PG_USER ]]; then
        (cd / && exec runuser -u "$PG_USER" -- "$@")
    else
        "$@"
    fi
}

find_pg_bin() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
        echo "$dir"
        return
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

start_postgres() {
    PG_BIN=$(find_pg_bin)
    if [[ -z $PG_BIN ]]; then
        ((EUID == 0)) || die "PostgreSQL is not installed (initdb, pg_ctl, postgres); install \
Debian's postgresql package or set DATABASE_URL"
        command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no \
apt-get; install PostgreSQL or set DATABASE_URL"
        log "PostgreSQL not found; installing Debian's postgresql package (apt-get)…"
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
        PG_BIN=$(find_pg_bin)
        [[ -n $PG_BIN ]] || die "installed postgresql, but found no initdb/pg_ctl/postgres"
    fi
    if ((EUID == 0)); then
        PG_USER=postgres
        id -u "$PG_USER" >/dev/null 2>&1 ||
            die "running as root, but there is no '$PG_USER' user to run the server as"
    fi

    local dir="$WORK_DIR/postgres" port password
    PG_DATA="$dir/data"
    mkdir -p "$dir"
    if [[ -n $PG_USER ]]; then
        chown "$PG_USER:" "$dir"
    fi
    chmod 0700 "$dir"
    port=$(free_port)
    password=$(random_secret)
    (umask 077 && printf '%s\n' "$password" >"$dir/password")
    if [[ -n $PG_USER ]]; then
        chown "$PG_USER:" "$dir/password"
    fi

    log "starting PostgreSQL ($PG_BIN) in $dir on 127.0.0.1:$port…"
    # Password authentication over TCP: the server listens on loopback only, but other local
    # users could reach it. --no-sync only skips initdb's own flush of a throwaway directory;
    # the server runs with fsync=on.
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U motcua --pwfile="$dir/password" \
        --auth=scram-sha-256 --no-locale -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1; then
        tail -n 30 "$dir/initdb.log" >&2 || true
        die "initdb failed"
    fi
    rm -f "$dir/password"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -W \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -k $dir -c fsync=on" start >/dev/null; then
        die "pg_ctl could not start PostgreSQL (see $dir/server.log)"
    fi
    PG_STARTED=1

    local waited=0
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; do
        if ((waited >= STARTUP_TIMEOUT * 5)); then
            tail -n 30 "$dir/server.log" >&2 || true
            die "PostgreSQL did not accept connections on 127.0.0.1:$port within \
${STARTUP_TIMEOUT}s (its log is above)"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    if ! PGPASSWORD=$password "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U motcua motcua; then
        die "could not create the motcua database"
    fi
    export DATABASE_URL="postgres://motcua:$password@127.0.0.1:$port/motcua"
    log "PostgreSQL ready at postgres://motcua:***@127.0.0.1:$port/motcua"
}

# --- Kafka-protocol broker (Tansu) ------------------------------------------------------------

CACHE_DIR="${MOTCUA_CACHE_DIR:-$HOME/.cache/motcua}"
TANSU_ROOT="$CACHE_DIR/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

tansu_build_running() {
    pgrep -f "cargo install tansu --version $TANSU_VERSION" >/dev/null 2>&1
}

wait_for_tansu_build() {
    if tansu_build_running; then
        log "waiting for a running 'cargo install tansu --version $TANSU_VERSION' to finish…"
        while tansu_build_running; do
            sleep 5
        done
    fi
}

ensure_tansu() {
    [[ -x $TANSU_BIN ]] && return
    local lock_fd
    mkdir -p "$CACHE_DIR"
    # One build at a time: builds by this script take the lock; a build started by hand is
    # recognised by its command line.
    exec {lock_fd}>"$CACHE_DIR/tansu-$TANSU_VERSION.lock"
    if ! flock -n "$lock_fd"; then
        log "another test-env.sh is building Tansu $TANSU_VERSION; waiting for it…"
        flock "$lock_fd"
    fi
    wait_for_tansu_build
    if [[ ! -x $TANSU_BIN ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is needed to build Tansu"
        log "building Tansu $TANSU_VERSION (the Kafka-protocol broker for the tests) with cargo \
install: this takes about 13 minutes on 2 cores, once; it is cached in $TANSU_ROOT"
        # Built into a staging root beside the cache and moved into place with one rename, so
        # an interrupted build never leaves a broken binary in the cache.
        TANSU_STAGING=$(mktemp -d "$CACHE_DIR/.tansu-$TANSU_VERSION.staging.XXXXXX")
        cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
            --root "$TANSU_STAGING" >&2 ||
            die "building Tansu failed (output above)"
        mkdir -p "$TANSU_ROOT/bin"
        mv -f "$TANSU_STAGING/bin/tansu" "$TANSU_BIN"
        rm -rf -- "$TANSU_STAGING"
        TANSU_STAGING=""
        log "Tansu $TANSU_VERSION built: $TANSU_BIN"
    fi
    flock -u "$lock_fd"
    exec {lock_fd}>&-
    [[ -x $TANSU_BIN ]] || die "no Tansu binary at $TANSU_BIN after the build"
}

start_broker() {
    ensure_tansu
    local port log_file="$WORK_DIR/tansu.log"
    port=$(free_port)
    log "starting the Kafka-protocol broker (Tansu $TANSU_VERSION, in-memory storage) on \
127.0.0.1:$port…"
    (cd "$WORK_DIR" && exec "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu/" \
        </dev/null >"$log_file" 2>&1) &
    BROKER_PID=$!

    local waited=0
    until port_open "$port"; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            tail -n 30 "$log_file" >&2 || true
            BROKER_PID=""
            die "the broker exited during startup (its log is above)"
        fi
        if ((waited >= STARTUP_TIMEOUT * 5)); then
            tail -n 30 "$log_file" >&2 || true
            die "the broker did not accept connections on 127.0.0.1:$port within \
${STARTUP_TIMEOUT}s (its log is above)"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    export KAFKA_BROKERS="127.0.0.1:$port"
    log "Kafka-protocol broker ready at $KAFKA_BROKERS"
}

# --- main -------------------------------------------------------------------------------------

if [[ ${DATABASE_URL:-} == "skip" ]]; then
    log "DATABASE_URL=skip: not providing PostgreSQL; its tests will skip"
    unset DATABASE_URL MOTCUA_REQUIRE_POSTGRES
elif [[ -n ${DATABASE_URL:-} ]]; then
    log "using the given DATABASE_URL; not starting PostgreSQL"
    export DATABASE_URL MOTCUA_REQUIRE_POSTGRES=1
else
    start_postgres
    export MOTCUA_REQUIRE_POSTGRES=1
fi

if [[ ${KAFKA_BROKERS:-} == "skip" ]]; then
    log "KAFKA_BROKERS=skip: not providing a broker; its tests will skip"
    unset KAFKA_BROKERS MOTCUA_REQUIRE_KAFKA
elif [[ -n ${KAFKA_BROKERS:-} ]]; then
    log "using the given KAFKA_BROKERS=$KAFKA_BROKERS; not starting a broker"
    export KAFKA_BROKERS MOTCUA_REQUIRE_KAFKA=1
else
    start_broker
    export MOTCUA_REQUIRE_KAFKA=1
fi

log "running: $*"
# In a process group of its own (job control on just for this), so that an INT or TERM sent
# to this script can be passed on to everything the command started, and the command does
# not inherit the "ignore SIGINT" of background jobs.
set -m
"$@" &
CMD_PID=$!
set +m
status=0
wait "$CMD_PID" || status=$?
CMD_PID=""
log "command exited with status $status"
exit "$status"
