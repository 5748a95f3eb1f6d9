#!/usr/bin/env bash
# Throwaway local PostgreSQL for the benchmarks (and for trying dagster-postgres.yaml).
#
#   eval "$(bench/pg.sh start)"   # installs if missing, starts on 127.0.0.1, prints exports
#   bench/pg.sh stop              # stops the server and deletes its data dir
#   bench/pg.sh status
#
# Settings (env): PG_BENCH_DIR (default /tmp/radar-pg), PG_BENCH_PORT (default 55432).
# The server runs as a non-root user (initdb refuses root): the `postgres` system
# user when we are root, else the current user. Listens on 127.0.0.1 only, trust
# auth, fsync off (a benchmark box, not a place for data you want to keep).
# Everything except the `export ...` lines goes to stderr, so `eval "$(...)"` works.
set -euo pipefail

DIR="${PG_BENCH_DIR:-/tmp/radar-pg}"
PORT="${PG_BENCH_PORT:-55432}"
DATA="$DIR/data"
LOG="$DIR/server.log"
DB=dagster
USER_NAME=dagster

log() { echo "pg.sh: $*" >&2; }

find_bin() {
  local b
  b="$(command -v pg_ctl 2>/dev/null || true)"
  if [ -z "$b" ]; then
    b="$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1 || true)"
  fi
  [ -n "$b" ] && dirname "$(readlink -f "$b")"
}

install_pg() {
  if [ -n "$(find_bin)" ]; then return; fi
  [ "$(id -u)" = 0 ] || { log "PostgreSQL is not installed and we are not root: install it (apt-get install postgresql)"; exit 1; }
  log "installing PostgreSQL via apt-get"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
}

as_owner() {
  # run "$@" as the user that owns the cluster
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

start() {
  install_pg
  local bin; bin="$(find_bin)"
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /bin/false postgres
  fi
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
  if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  if as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "already running"
  else
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w start \
      -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" >&2
  fi
  local psql="$bin/psql"
  if ! as_owner "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "select 1 from pg_roles where rolname='$USER_NAME'" | grep -q 1; then
    as_owner "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "create role $USER_NAME login createdb" >&2
  fi
  if ! as_owner "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "select 1 from pg_database where datname='$DB'" | grep -q 1; then
    as_owner "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "create database $DB owner $USER_NAME" >&2
  fi
  log "PostgreSQL on 127.0.0.1:$PORT, database $DB, data in $DATA (log $LOG)"
  cat <<ENV
export DAGSTER_PG_HOST=127.0.0.1
export DAGSTER_PG_PORT=$PORT
export DAGSTER_PG_USER=$USER_NAME
export DAGSTER_PG_PASSWORD=
export DAGSTER_PG_DB=$DB
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1
export DAGSTER_EVENT_BATCH_SIZE=1000
ENV
}

stop() {
  local bin; bin="$(find_bin || true)"
  if [ -n "$bin" ] && [ -s "$DATA/PG_VERSION" ]; then
    as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
  fi
  rm -rf "$DIR"
  log "stopped; removed $DIR"
}

status() {
  local bin; bin="$(find_bin)"
  as_owner "$bin/pg_ctl" -D "$DATA" status
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
