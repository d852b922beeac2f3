"""OR1 Lab settings, all read from the environment (one module for every mode).

Modes
    Development (the default, and the embedded ``manage.py demo``): DEBUG on, SQLite under ``OR1_DATA_DIR``,
    a Celery broker on the filesystem, so nothing but Python is needed.
    Production: ``OR1_ENV=production`` or ``DJANGO_DEBUG=0``. DEBUG off, secure cookies, HSTS, SSL redirect;
    the process refuses to start without ``DJANGO_SECRET_KEY`` and ``DJANGO_ALLOWED_HOSTS``, and passes
    ``manage.py check --deploy`` with no warnings.

Variables
    OR1_ENV                     ``production`` selects production mode
    DJANGO_DEBUG                ``0`` selects production mode too
    DJANGO_SECRET_KEY           required in production
    DJANGO_ALLOWED_HOSTS        comma list; required in production
    DJANGO_CSRF_TRUSTED_ORIGINS comma list of origins (https://lab.example.org) behind a proxy
    DJANGO_LOG_LEVEL            default INFO
    OR1_LOG_FORMAT              ``json`` (the production default: one JSON object per line on stdout) or ``plain``
    DATABASE_URL                postgres://user:pass@host:5432/name or sqlite:///path; default: SQLite in the
                                data dir
    REDIS_URL                   redis://host:6379/0: the Celery broker when CELERY_BROKER_URL is not set
    CELERY_BROKER_URL           overrides REDIS_URL; default ``filesystem://`` under ``<data dir>/broker``
    CELERY_RESULT_BACKEND       default: the Redis broker, else files under ``<data dir>/celery-results``
                                (results are ignored unless a task asks: the Run row is the source of truth)
    OR1_DATA_DIR                default ``<repo>/var``
    OR1_RUNS_DIR                default ``<data dir>/runs``
    OR1_DATASETS_DIR            default ``<data dir>/datasets`` (uploaded eval sets, difficulty jobs' files)
    OR1_EXAMPLES_DIR            default ``<repo>/examples`` (read by ``manage.py load_examples``)
    OR1_STATIC_ROOT             default ``<data dir>/static`` (``collectstatic`` target)
    OR1_WORKER_QUEUE            this host's own Celery queue (launch, cancel and checks of the trainers it
                                runs); default ``host.<hostname>``
    OR1_WORKER_QUEUES           comma list of Celery queues a worker consumes; default ``default`` and
                                OR1_WORKER_QUEUE
    OR1_LOCAL_LAUNCH_QUEUE      where ``launch_run`` sends local runs; default OR1_WORKER_QUEUE (one host runs
                                web and worker); name a GPU host's queue when the web tier runs elsewhere
    OR1_SLURM_QUEUE             where Slurm runs are submitted, cancelled and followed (workers that reach
                                slurmrestd and mount the clusters' runs directories); default OR1_LOCAL_LAUNCH_QUEUE
    OR1_PUBLIC_URL              how a trainer reaches the platform's ingestion API; default http://127.0.0.1:8000
    OR1_CANCEL_GRACE_S          seconds a cancelled trainer gets to checkpoint after SIGTERM before SIGKILL (30)
    OR1_RECONCILE_INTERVAL_S    how often beat checks the active runs (10)
    OR1_JOB_QUEUE_TIMEOUT_S     an evaluation or difficulty job still queued after this is sent again, and fails
                                if still queued as long again (3600)
    OR1_INGEST_MAX_BYTES        largest ingestion request body (5 MB); OR1_INGEST_MAX_POINTS most points (10000)
    OR1_LONGEST_TASK_S          the longest a Celery task may hold a message (default 7 days); the Redis
                                visibility timeout is twice that, so a long task is never redelivered
    OR1_SECURE_SSL_REDIRECT     default on in production; turn off only when a proxy redirects to HTTPS
    OR1_TRUST_X_FORWARDED_PROTO trust the proxy's X-Forwarded-Proto header (only behind a proxy that sets it)
    OR1_HSTS_SECONDS            default one year; OR1_HSTS_PRELOAD default on
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from or1platform.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

PRODUCTION = env_str("OR1_ENV", "development").lower() == "production" or not env_bool("DJANGO_DEBUG", True)
DEBUG = not PRODUCTION

DATA_DIR = env_path("OR1_DATA_DIR", BASE_DIR / "var")
OR1_RUNS_DIR = env_path("OR1_RUNS_DIR", DATA_DIR / "runs")
# Uploaded eval sets and the files of difficulty jobs (pass counts, filtered sets): workers read them there.
OR1_DATASETS_DIR = env_path("OR1_DATASETS_DIR", DATA_DIR / "datasets")
OR1_EXAMPLES_DIR = env_path("OR1_EXAMPLES_DIR", BASE_DIR / "examples")

# ------------------------------------------------------------------------------------------- security

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Production mode (OR1_ENV=production or DJANGO_DEBUG=0) needs a "
            "long random secret, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-or1-lab-development-only-never-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is not set. In production list the host names this site is served under, "
        "comma-separated (e.g. lab.example.org)."
    )
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("OR1_SECURE_SSL_REDIRECT", True)
    # Load balancers and container health checks talk plain HTTP to the health endpoints.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("OR1_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("OR1_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
    if not SECURE_SSL_REDIRECT:
        # The operator said a proxy redirects to HTTPS; the check cannot see that.
        SILENCED_SYSTEM_CHECKS = ["security.W008"]
if env_bool("OR1_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# ------------------------------------------------------------------------------------------ application

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "experiments",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "or1platform.urls"
WSGI_APPLICATION = "or1platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ------------------------------------------------------------------------------------------- database

_database_url = env_str("DATABASE_URL")
if _database_url:
    DATABASES = {"default": database_from_url(_database_url)}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "or1lab.sqlite3")}
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("OR1_DB_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ----------------------------------------------------------------------------------------------- auth

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------------------- static files

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("OR1_STATIC_ROOT", DATA_DIR / "static")
if not PRODUCTION:
    # WhiteNoise serves from the finders in development but warns on every start when this folder is missing.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed files need `collectstatic`; development serves the source files as they are.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST API v1 (issue 7: experiments/api/) ---------------------------------------------------------
# Scripts authenticate with personal API tokens (Authorization: Bearer or1_...), the browser with its
# session; the trainer's per-run ingestion tokens are never accepted here (experiments/api/ingest.py).
# Every error has one shape, {status, code, detail, errors: [{path, message}]} (experiments/api/errors.py).
INSTALLED_APPS += ["drf_spectacular_sidecar"]  # Swagger UI and Redoc files, served locally: no CDN
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "experiments.api.schema.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "experiments.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "experiments.api.auth.TokenScope",
    ],
    "DEFAULT_PAGINATION_CLASS": "experiments.api.pagination.PageNumberPagination",
    "EXCEPTION_HANDLER": "experiments.api.errors.exception_handler",
    "DATETIME_FORMAT": "iso-8601",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OR1 Lab API",
    "DESCRIPTION": (
        "Teams, projects, datasets, experiments, runs, metrics, checkpoints, evaluations, sweeps and shares "
        "of Skywork-OR1-style RL training. Authenticate with a personal API token "
        "(`Authorization: Bearer or1_...`, created on the Tokens page) or a browser session. Objects you may "
        "not read answer 404; reads you may not turn into writes answer 403."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "experiments.models.runs.RunStatus",
        "SweepStatusEnum": "experiments.models.sweeps.Sweep.Status",
        "SweepPointStateEnum": "experiments.models.sweeps.SweepPoint.State",
        "ShareKindEnum": "experiments.models.sharing.Share.Kind",
        "RoleEnum": "experiments.models.teams.Membership.Role",
        "LauncherEnum": "experiments.models.runs.Run.Launcher",
        "JobStatusEnum": "experiments.models.jobs.JobStatus",
    },
}
#: how often beat moves live sweeps on (launches into free slots, marks finished ones)
OR1_SWEEP_ADVANCE_INTERVAL_S = env_int("OR1_SWEEP_ADVANCE_INTERVAL_S", 10)
# --- end of REST API v1 -----------------------------------------------------------------------------

# -------------------------------------------------------------------------------------------- Celery
# The Run row in the database is the source of truth for a run's state; Celery only carries work.

_broker_url = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL")
OR1_LONGEST_TASK_S = env_int("OR1_LONGEST_TASK_S", 7 * 24 * 3600)
if _broker_url:
    CELERY_BROKER_URL = _broker_url
    # Redis redelivers a message not acknowledged within the visibility timeout; with acks_late a long task
    # would run twice. Keep the timeout well above the longest task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * OR1_LONGEST_TASK_S}
else:
    # A broker that needs no server and works across processes (web, worker, beat) on one machine.
    _broker_dir = DATA_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost//"  # a host, or kombu warns that none was given
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or (
    _broker_url if _broker_url.startswith("redis") else ""
)
if not CELERY_RESULT_BACKEND:
    (DATA_DIR / "celery-results").mkdir(parents=True, exist_ok=True)
    CELERY_RESULT_BACKEND = f"file://{DATA_DIR / 'celery-results'}"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Each worker host also consumes a queue of its own: a trainer is a process on one host, so launching,
# cancelling and checking it must happen there (workers/launchers/local.py).
OR1_WORKER_QUEUE = env_str("OR1_WORKER_QUEUE", f"host.{socket.gethostname()}")
OR1_WORKER_QUEUES = env_list("OR1_WORKER_QUEUES", [CELERY_TASK_DEFAULT_QUEUE, OR1_WORKER_QUEUE])
OR1_LOCAL_LAUNCH_QUEUE = env_str("OR1_LOCAL_LAUNCH_QUEUE", OR1_WORKER_QUEUE)
OR1_SLURM_QUEUE = env_str("OR1_SLURM_QUEUE", "")  # empty: experiments.actions.slurm_queue() picks the launch queue
OR1_CANCEL_GRACE_S = env_int("OR1_CANCEL_GRACE_S", 30)
OR1_RECONCILE_INTERVAL_S = env_int("OR1_RECONCILE_INTERVAL_S", 10)
# An evaluation or difficulty job queued this long (no worker took its message) is sent again; still queued as
# long again after that, it fails saying so (workers/eval_jobs.py, resend_or_fail_queued).
OR1_JOB_QUEUE_TIMEOUT_S = env_int("OR1_JOB_QUEUE_TIMEOUT_S", 3600)
CELERY_BEAT_SCHEDULE = {
    # Runs on beat's own host and fans out one check per worker host with active runs (workers/reconcile.py).
    "reconcile-runs": {
        "task": "workers.tasks.reconcile",
        "schedule": float(OR1_RECONCILE_INTERVAL_S),
        "options": {"queue": OR1_WORKER_QUEUE, "expires": float(OR1_RECONCILE_INTERVAL_S)},
    }
}

# --------------------------------------------------------------------------------------------- ingestion

OR1_PUBLIC_URL = env_str("OR1_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
OR1_INGEST_MAX_BYTES = env_int("OR1_INGEST_MAX_BYTES", 5 * 1024 * 1024)
OR1_INGEST_MAX_POINTS = env_int("OR1_INGEST_MAX_POINTS", 10_000)

# --- logging (issue 10: deployment) ------------------------------------------------------------------
# Production writes one JSON object per line (or1platform/jsonlog.py) to stdout, where the container runtime
# or systemd collects it and a log collector parses it as is; development keeps readable text on stderr.
# OR1_LOG_FORMAT=json|plain overrides the mode's format. Django's own loggers are re-declared without
# handlers so that their records reach the console once, through the root logger.
OR1_LOG_FORMAT = env_str("OR1_LOG_FORMAT", "json" if PRODUCTION else "plain")
if OR1_LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"OR1_LOG_FORMAT={OR1_LOG_FORMAT!r} is not one of json, plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "or1platform.jsonlog.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # __stdout__: a Celery worker replaces sys.stdout with a proxy into logging, which would loop.
            "stream": "ext://sys.__stdout__" if PRODUCTION else "ext://sys.stderr",
            "formatter": OR1_LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"level": env_str("DJANGO_LOG_LEVEL", "INFO"), "propagate": True},
        # One INFO line per HTTP request: Slurm polls and readiness pings would drown everything else.
        "httpx": {"level": "WARNING"},
    },
}
# A Celery worker replaces the root logger's handlers with its own text format unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = OR1_LOG_FORMAT != "json"
if OR1_LOG_FORMAT == "json":
    logging.captureWarnings(True)  # warnings become log records (JSON) instead of raw lines on stderr
# --- end of logging -----------------------------------------------------------------------------------

# --- dashboards and health alerts (issue 5: experiments/dashboards/, experiments/alerts.py) --------------
# Charts never receive more than about this many points per series; a zoomed range that spans fewer steps
# comes at full resolution.
OR1_CHART_MAX_POINTS = env_int("OR1_CHART_MAX_POINTS", 2000)
# The health rules, checked by the beat task experiments.alerts.check_runs every OR1_ALERT_CHECK_INTERVAL_S.
# "Steps" are logged training steps. An alert clears when its rule has not held for half as many steps.
OR1_ALERT_CHECK_INTERVAL_S = env_int("OR1_ALERT_CHECK_INTERVAL_S", 30)
# Entropy collapse: the controlled entropy signal below FRACTION x entropy.target for STEPS steps in a row.
OR1_ALERT_ENTROPY_COLLAPSE_FRACTION = float(env_str("OR1_ALERT_ENTROPY_COLLAPSE_FRACTION", "0.5"))
OR1_ALERT_ENTROPY_COLLAPSE_STEPS = env_int("OR1_ALERT_ENTROPY_COLLAPSE_STEPS", 10)
# Entropy explosion: above MULTIPLE x entropy.target for STEPS steps in a row.
OR1_ALERT_ENTROPY_EXPLOSION_MULTIPLE = float(env_str("OR1_ALERT_ENTROPY_EXPLOSION_MULTIPLE", "2.0"))
OR1_ALERT_ENTROPY_EXPLOSION_STEPS = env_int("OR1_ALERT_ENTROPY_EXPLOSION_STEPS", 10)
# The controller's coefficient at entropy.max_coef for STEPS steps in a row: it cannot push any harder.
OR1_ALERT_COEF_PINNED_STEPS = env_int("OR1_ALERT_COEF_PINNED_STEPS", 20)
# A running run with no new metric for the longer of MINUTES and STEP_MULTIPLE x its median step time.
OR1_ALERT_STALL_MINUTES = env_int("OR1_ALERT_STALL_MINUTES", 30)
OR1_ALERT_STALL_STEP_MULTIPLE = env_int("OR1_ALERT_STALL_STEP_MULTIPLE", 5)
# Rising truncation, within the current stage: the mean clip ratio of the last WINDOW steps is at least
# MIN_RATIO and at least RISE above the mean of the WINDOW steps before.
OR1_ALERT_TRUNCATION_WINDOW = env_int("OR1_ALERT_TRUNCATION_WINDOW", 10)
OR1_ALERT_TRUNCATION_RISE = float(env_str("OR1_ALERT_TRUNCATION_RISE", "0.1"))
OR1_ALERT_TRUNCATION_MIN_RATIO = float(env_str("OR1_ALERT_TRUNCATION_MIN_RATIO", "0.2"))
# How often beat merges new points into the chart tiles (experiments.dashboards.tiles.refresh_pending); a chart
# also merges what its own series lack before it reads them, so this only keeps first looks fast.
OR1_TILE_REFRESH_INTERVAL_S = env_int("OR1_TILE_REFRESH_INTERVAL_S", 30)
# plotly.js comes from the installed plotly package (experiments/dashboards/staticfinder.py), not a CDN.
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "experiments.dashboards.staticfinder.PlotlyFinder",
]
# --- end of dashboards and health alerts --------------------------------------------------------------

# --- periodic tasks of later features (their intervals are defined in their blocks above) ------------------
# Task modules outside the apps' tasks.py, so workers register them too.
CELERY_IMPORTS = ("experiments.alerts", "experiments.dashboards.tiles", "workers.eval_jobs")
CELERY_BEAT_SCHEDULE |= {
    "check-alerts": {
        "task": "experiments.alerts.check_runs",
        "schedule": float(OR1_ALERT_CHECK_INTERVAL_S),
        "options": {"queue": CELERY_TASK_DEFAULT_QUEUE, "expires": float(OR1_ALERT_CHECK_INTERVAL_S)},
    },
    "refresh-chart-tiles": {
        "task": "experiments.dashboards.tiles.refresh_pending",
        "schedule": float(OR1_TILE_REFRESH_INTERVAL_S),
        "options": {"queue": CELERY_TASK_DEFAULT_QUEUE, "expires": float(OR1_TILE_REFRESH_INTERVAL_S)},
    },
    "advance-sweeps": {
        "task": "workers.tasks.advance_sweeps",
        "schedule": float(OR1_SWEEP_ADVANCE_INTERVAL_S),
        "options": {"queue": CELERY_TASK_DEFAULT_QUEUE, "expires": float(OR1_SWEEP_ADVANCE_INTERVAL_S)},
    },
}
