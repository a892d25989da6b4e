#!/usr/bin/env bash
# Throwaway PostgreSQL 15 and Redis on free loopback ports, for the test suite and the benchmark.
#
#   scripts/services.sh run CMD [ARGS...]   start both, export DATABASE_URL and REDIS_URL, run CMD,
#                                           stop both whatever happens; exits with CMD's status
#   scripts/services.sh start DIR           start both with their state under DIR; writes DIR/env
#   scripts/services.sh stop DIR            stop what `start DIR` started
#   scripts/services.sh available           exit 0 when PostgreSQL and Redis can be started here
#
# PG_DURABLE=1 keeps PostgreSQL's default durability (fsync, synchronous_commit): the benchmark
# uses it. Without it the cluster trades durability for speed, which a test database can afford.
# As root, PostgreSQL runs as the `postgres` user (initdb refuses root).
set -euo pipefail

PG_VERSION="${PG_VERSION:-15}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/${PG_VERSION}/bin}"
PG_DB="${PG_DB:-okta_mcp}"

die() { echo "services.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

available() {
  [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && command -v redis-server > /dev/null \
    && { [ "$(id -u)" != "0" ] || id postgres > /dev/null 2>&1; }
}

start() {
  local dir="$1"
  available || die "PostgreSQL ${PG_VERSION} ($PG_BIN) or redis-server is missing"
  mkdir -p "$dir"
  chmod 755 "$dir"
  local pg_port redis_port
  pg_port="$(free_port)"
  redis_port="$(free_port)"
  while [ "$redis_port" = "$pg_port" ]; do redis_port="$(free_port)"; done

  mkdir -p "$dir/pg"
  [ "$(id -u)" = "0" ] && chown postgres: "$dir/pg"
  as_pg "$PG_BIN/initdb" -D "$dir/pg/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync \
    > "$dir/pg/initdb.log" 2>&1 || { cat "$dir/pg/initdb.log" >&2; die "initdb failed"; }
  local opts="-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg -c max_connections=200"
  if [ "${PG_DURABLE:-0}" != "1" ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$dir/pg/data" -o "$opts" -l "$dir/pg/postgres.log" -w -t 60 start > /dev/null \
    || { cat "$dir/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
  as_pg "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE $PG_DB" > /dev/null

  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" > /dev/null
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$redis_port" ping > /dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$redis_port" ping > /dev/null 2>&1 || { cat "$dir/redis.log" >&2; die "Redis did not start"; }

  cat > "$dir/env" <<EOF
export DATABASE_URL=postgres://postgres@127.0.0.1:${pg_port}/${PG_DB}
export REDIS_URL=redis://127.0.0.1:${redis_port}/0
EOF
  echo "services.sh: PostgreSQL on 127.0.0.1:${pg_port}, Redis on 127.0.0.1:${redis_port} (state in $dir)" >&2
}

stop() {
  local dir="$1"
  if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2> /dev/null || true
  fi
  if [ -f "$dir/pg/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m fast -w -t 30 stop > /dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  run)
    shift
    [ $# -gt 0 ] || die "usage: $0 run CMD [ARGS...]"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/okta-mcp-services.XXXXXX")"
    cleanup() { stop "$dir"; rm -rf "$dir"; }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    start "$dir"
    # shellcheck disable=SC1091
    . "$dir/env"
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  start) [ -n "${2:-}" ] || die "usage: $0 start DIR"; start "$2"; cat "$2/env" ;;
  stop) [ -n "${2:-}" ] || die "usage: $0 stop DIR"; stop "$2" ;;
  available) available ;;
  *) die "usage: $0 run CMD... | start DIR | stop DIR | available" ;;
esac
