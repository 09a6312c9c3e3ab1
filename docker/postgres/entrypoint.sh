#!/bin/sh
# Starts Postgres 15 as the official image does: on an empty $PGDATA, initdb
# with POSTGRES_USER and POSTGRES_PASSWORD (read from the environment, written
# to a file only for initdb's --pwfile and removed at once), listening on
# every address of the container with scram-sha-256. Only POSTGRES_DB=postgres
# is supported (the lab creates its databases over SQL).
set -eu
PGBIN=/usr/lib/postgresql/15/bin
if [ "${1:-}" = postgres ]; then
  shift
  set -- "$PGBIN/postgres" "$@"
fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "fourleg-entrypoint: POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  if [ "${POSTGRES_DB:-postgres}" != postgres ]; then
    echo "fourleg-entrypoint: only POSTGRES_DB=postgres is supported" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
  "$PGBIN/initdb" -D "$PGDATA" --username="${POSTGRES_USER:-postgres}" --pwfile="$pwfile" \
    --auth=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
unset POSTGRES_PASSWORD
exec "$@"
