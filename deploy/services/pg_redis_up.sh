#!/usr/bin/env bash
# PostgreSQL + Redis for the platform and its tests (Debian 12, root, no systemd). Idempotent.
#
# A server that already answers is used as it is, whatever its authentication (the project machines
# start PostgreSQL with trust auth and Redis before any session); a missing one is installed from
# Debian's packages and started here. Either way the script makes sure the app role (LOGIN, CREATEDB for
# Django's test_<name> database, a password for scram clusters) and its database exist, proves a login
# over 127.0.0.1 with those credentials, and writes the URLs into the env file.
#
#   APP_DB=app APP_DB_USER=app APP_DB_PASSWORD=app   role and database (defaults)
#   PG_PORT=5432 PG_CLUSTER=main REDIS_PORT=6379   where to look, and what to create when nothing answers
#   PG_FAST=1   when this script starts the cluster itself: fsync/synchronous_commit/full_page_writes off
#               (test data only; a cluster found running is never reconfigured)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root pg_redis_up

DB="${APP_DB:-app}"; DBU="${APP_DB_USER:-app}"; DBP="${APP_DB_PASSWORD:-app}"
PG_PORT="${PG_PORT:-5432}"; PG_CLUSTER="${PG_CLUSTER:-main}"; REDIS_PORT="${REDIS_PORT:-6379}"
tag=pg_redis_up

# ------------------------------------------------------------------ PostgreSQL
pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
if pg_up; then
  log $tag "postgres already answers on 127.0.0.1:$PG_PORT; left as it is"
else
  apt_install postgresql postgresql-client
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  [ -n "$ver" ] || ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if ! pg_lsclusters -h | awk -v v="$ver" -v c="$PG_CLUSTER" '$1 == v && $2 == c {f = 1} END {exit !f}'; then
    pg_createcluster "$ver" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
    log $tag "created cluster $ver/$PG_CLUSTER"
  fi
  if [ "${PG_FAST:-1}" = 1 ]; then
    fast=/etc/postgresql/$ver/$PG_CLUSTER/conf.d/zz-or1-ci.conf
    printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >"$fast"
    chown postgres:postgres "$fast"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" "$PG_CLUSTER" start
  for _ in $(seq 100); do pg_up && break; sleep 0.1; done
  pg_up || { echo "postgres $ver/$PG_CLUSTER did not come up; see /var/log/postgresql/" >&2; exit 1; }
  log $tag "postgres $ver/$PG_CLUSTER started"
fi

# The postgres OS user reaches the server through its socket (peer or trust, both Debian defaults).
psql_super() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"; }
psql_super -v u="$DBU" -v p="$DBP" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p') \gexec
SQL
psql_super -v d="$DB" -v u="$DBU" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'d', :'u')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'d') \gexec
SQL
DATABASE_URL="postgres://$DBU:$DBP@127.0.0.1:$PG_PORT/$DB"
can_create=$(psql -X "$DATABASE_URL" -Atc "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user")
[ "$can_create" = t ] || { echo "role $DBU cannot create databases" >&2; exit 1; }
log $tag "role '$DBU' (CREATEDB) and database '$DB' ready; login over 127.0.0.1 OK"

# ------------------------------------------------------------------ Redis
redis_ping() {  # plain RESP over bash's /dev/tcp in a subshell (fd 3 dies with it); no redis-cli needed
  (
    exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 &&
      [ "${reply%$'\r'}" = "+PONG" ]
  ) 2>/dev/null
}
if redis_ping; then
  log $tag "redis already answers on 127.0.0.1:$REDIS_PORT; left as it is"
else
  apt_install redis-server
  install -d -o redis -g redis -m 0755 /run/redis /var/lib/redis /var/log/redis
  # Same flags the project machines use: loopback only, nothing kept on disk.
  setpriv --reuid=redis --regid=redis --init-groups redis-server --daemonize yes \
    --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no --dir /var/lib/redis \
    --pidfile /run/redis/redis-$REDIS_PORT.pid --logfile /var/log/redis/or1.log
  for _ in $(seq 100); do redis_ping && break; sleep 0.05; done
  redis_ping || { echo "redis did not come up; see /var/log/redis/or1.log" >&2; exit 1; }
  log $tag "redis started (pid $(cat /run/redis/redis-$REDIS_PORT.pid))"
fi

REDIS="redis://127.0.0.1:$REDIS_PORT"
env_set DATABASE_URL "$DATABASE_URL" REDIS_URL "$REDIS/0" \
  CELERY_BROKER_URL "$REDIS/1" CELERY_RESULT_BACKEND "$REDIS/2"
echo "DATABASE_URL=$DATABASE_URL"
echo "REDIS_URL=$REDIS/0  CELERY_BROKER_URL=$REDIS/1  CELERY_RESULT_BACKEND=$REDIS/2"
log $tag "done (written to $OR1_SERVICES_ENV)"
