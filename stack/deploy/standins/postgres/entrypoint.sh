#!/bin/bash
# What the stack relies on from the official postgres image's entrypoint:
#   POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (required), POSTGRES_USER
#   (default postgres), POSTGRES_DB (default: the user), PGDATA; the cluster
#   is initialised on first start only, then postgres runs as the postgres
#   user, listening on every address with password (scram) authentication.
set -Eeuo pipefail

file_env() {
  local var=$1 def=${2:-}
  local fvar="${var}_FILE"
  if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
    echo >&2 "error: both $var and $fvar are set (but are exclusive)"
    exit 1
  fi
  local val=$def
  if [ -n "${!var:-}" ]; then
    val=${!var}
  elif [ -n "${!fvar:-}" ]; then
    val=$(<"${!fvar}")
  fi
  export "$var"="$val"
  unset "$fvar"
}

if [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 2777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo >&2 "error: database is uninitialized and POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set"
    exit 1
  fi
  echo "initialising $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
      --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset POSTGRES_PASSWORD
  echo "initialised; starting"
fi
exec "$@"
