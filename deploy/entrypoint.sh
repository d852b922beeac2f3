#!/usr/bin/env bash
# The images' entry point: one image, several roles. tini (PID 1) runs this; each role execs its server so
# that signals reach it directly (gunicorn and Celery stop gracefully on SIGTERM).
#
#   web       gunicorn on $GUNICORN_BIND (deploy/gunicorn.conf.py)
#   worker    a Celery worker on the queues of settings.OR1_WORKER_QUEUES ("default" and this host's own
#             queue OR1_WORKER_QUEUE, unless OR1_WORKER_QUEUES names others)
#   beat      Celery beat (the reconciler's clock); run exactly one
#   migrate   apply database migrations, then exit (run it before starting a new version)
#   check     `manage.py check --deploy`: the production settings as this container sees them
#   anything else is run as a command (e.g. `manage.py create_team ...`, `or1-train validate spec.yaml`)
set -euo pipefail
cd /app

role="${1:-web}"
case "$role" in
  web)
    shift || true
    exec gunicorn -c deploy/gunicorn.conf.py "$@" or1platform.wsgi
    ;;
  worker)
    shift || true
    # The settings are the one place the queue names are computed (the web tier routes by the same values).
    queues="$(python -c 'from django.conf import settings; print(",".join(settings.OR1_WORKER_QUEUES))')"
    # prefork with one process: a task only starts or checks a detached trainer and returns in seconds;
    # gossip, mingle and heartbeat cost start-up time and broker traffic for features the platform never uses.
    exec celery -A or1platform --quiet worker --pool=prefork --concurrency="${OR1_WORKER_CONCURRENCY:-1}" \
      --without-gossip --without-mingle --without-heartbeat -n "worker@$(hostname)" -Q "$queues" \
      --loglevel="${CELERY_LOG_LEVEL:-INFO}" "$@"
    ;;
  beat)
    shift || true
    exec celery -A or1platform --quiet beat --loglevel="${CELERY_LOG_LEVEL:-INFO}" "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  check)
    exec python manage.py check --deploy --fail-level WARNING
    ;;
  manage.py)
    shift
    exec python manage.py "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
