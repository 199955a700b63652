#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: Debian's binaries, a temporary directory,
# a free loopback port, trust authentication, fsync off. Nothing of the system's own
# PostgreSQL (its clusters, its service, port 5432) is touched.
#
#   source scripts/pg-cluster.sh
#   pg_cluster_start    # exports CLARION_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   pg_cluster_stop     # stops it (immediate) and deletes its directory; safe to call twice
#
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root);
# otherwise as the caller.

pg_cluster_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL's server binaries are missing: install Debian's postgresql package (./setup.sh test does)" >&2
    return 1
  fi
  echo "$bin"
}

pg_cluster_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_cluster_start() {
  local bin port
  bin=$(pg_cluster_bin) || return 1
  PG_CLUSTER_DIR=$(mktemp -d /tmp/clarion-pg.XXXXXX)
  export PG_CLUSTER_DIR PG_CLUSTER_BIN="$bin"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_CLUSTER_DIR"; fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pg_cluster_as_owner "$bin/initdb" -D "$PG_CLUSTER_DIR/data" -U postgres -A trust -E UTF8 --no-sync >"$PG_CLUSTER_DIR/initdb.log" 2>&1 \
    || { cat "$PG_CLUSTER_DIR/initdb.log" >&2; return 1; }
  pg_cluster_as_owner "$bin/pg_ctl" -D "$PG_CLUSTER_DIR/data" -l "$PG_CLUSTER_DIR/server.log" -w -t 60 \
    -o "-p $port -k $PG_CLUSTER_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
    start >/dev/null || { cat "$PG_CLUSTER_DIR/server.log" >&2; return 1; }
  export CLARION_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') for the tests on 127.0.0.1:$port ($PG_CLUSTER_DIR)"
}

pg_cluster_stop() {
  if [ -n "${PG_CLUSTER_DIR:-}" ] && [ -d "$PG_CLUSTER_DIR" ]; then
    pg_cluster_as_owner "$PG_CLUSTER_BIN/pg_ctl" -D "$PG_CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_CLUSTER_DIR"
  fi
  unset PG_CLUSTER_DIR CLARION_TEST_DATABASE_URL
}
