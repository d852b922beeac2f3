"""Gunicorn for the OR1 Lab web tier: ``gunicorn -c deploy/gunicorn.conf.py or1platform.wsgi``.

Why WSGI and threads: every live page polls small fragments every few seconds (htmx), and the trainers post
metric batches; no endpoint streams, so an ASGI server buys nothing. ``gthread`` workers keep a slow client
or a long log tail from blocking the others, and a thread costs far less memory than a process holding Django.

Configured from the environment (defaults in brackets); ``GUNICORN_CMD_ARGS`` adds any other gunicorn flag,
e.g. ``--certfile``/``--keyfile`` to serve HTTPS without a proxy:

    GUNICORN_BIND            [0.0.0.0:8000]   address to listen on
    GUNICORN_WORKERS         [2 x CPUs + 1, at most 8]
    GUNICORN_THREADS         [4]              threads per worker
    GUNICORN_TIMEOUT         [60]             seconds a request may take before its worker is replaced
    GUNICORN_MAX_REQUESTS    [2000]           a worker is recycled after this many requests (with jitter)
    GUNICORN_FORWARDED_ALLOW_IPS [127.0.0.1,::1]  proxies whose X-Forwarded-* headers gunicorn believes

Logs: gunicorn's error log and its access log go to stdout as one JSON object per line (the formatter of
``or1platform/jsonlog.py``), like Django's in production; each access record carries the request's fields.
"""

from __future__ import annotations

import os
from pathlib import Path

from or1platform.jsonlog import JsonFormatter


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


class AccessJsonFormatter(JsonFormatter):
    """Gunicorn passes its access-log atoms as the record's arguments; emit them as fields, not a log line."""

    def format(self, record):
        atoms = record.args if isinstance(record.args, dict) else {}
        record.args = ()
        record.msg = f"{atoms.get('m', '')} {atoms.get('U', '')} {atoms.get('s', '')}".strip()
        record.http = {
            "method": atoms.get("m"),
            "path": atoms.get("U"),
            "query": atoms.get("q") or "",
            "status": int(atoms["s"]) if str(atoms.get("s", "")).isdigit() else atoms.get("s"),
            "bytes": atoms.get("B"),
            "duration_ms": round(atoms["D"] / 1000, 1) if isinstance(atoms.get("D"), int) else None,
            "remote": atoms.get("h"),
            "forwarded_for": atoms.get("{x-forwarded-for}i", "-"),
            "user_agent": atoms.get("a"),
        }
        return super().format(record)


bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]
workers = _int("GUNICORN_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 8))
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The heartbeat file of each worker: in memory where there is a /dev/shm (a container's overlay fs can stall).
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None
# Gunicorn 27's control socket lives at one path under $HOME, which two servers on a host would share (and a
# container user may have no home). Signals do the same job: HUP reloads the workers, TERM stops gracefully.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}, "access": {"()": AccessJsonFormatter}},
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        },
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "access"},
    },
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
