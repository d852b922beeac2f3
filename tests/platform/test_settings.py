"""Settings from the environment: DATABASE_URL forms, development defaults, and production mode.

Settings are read once per process, so each mode is checked in a fresh ``manage.py``/python subprocess with
exactly the environment under test.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from or1platform.env import database_from_url, env_bool, env_list

REPO = Path(__file__).resolve().parents[2]

#: Variables that select services or modes; a subprocess starts without them unless a test sets them.
MODE_VARIABLES = [
    "OR1_ENV",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "OR1_DATA_DIR",
    "OR1_RUNS_DIR",
    "OR1_SECURE_SSL_REDIRECT",
    "OR1_TRUST_X_FORWARDED_PROTO",
]


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES}
    env["DJANGO_SETTINGS_MODULE"] = "or1platform.settings"
    env["OR1_DATA_DIR"] = str(tmp_path / "data")
    env.update(overrides)
    return env


def settings_in_subprocess(tmp_path: Path, names: list[str], **env: str) -> dict:
    code = (
        "import json, sys; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {names!r}}}, default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=clean_env(tmp_path, **env), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(**extra: str) -> dict[str, str]:
    return {
        "OR1_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "lab.example.org",
        **extra,
    }


# ---------------------------------------------------------------------------------------- DATABASE_URL


def test_postgres_url_becomes_a_psycopg_database():
    db = database_from_url("postgres://app:s%40cret@db.internal:6543/or1?sslmode=require")
    assert db == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "or1",
        "USER": "app",
        "PASSWORD": "s@cret",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


def test_postgresql_scheme_without_port_or_password():
    db = database_from_url("postgresql://app@127.0.0.1/app")
    assert (db["ENGINE"], db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "django.db.backends.postgresql",
        "app",
        "app",
        "",
        "127.0.0.1",
        "",
    )


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:////var/lib/or1/lab.sqlite3", "/var/lib/or1/lab.sqlite3"),
        ("sqlite:///relative/lab.sqlite3", "relative/lab.sqlite3"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
    ],
)
def test_sqlite_urls(url, name):
    assert database_from_url(url) == {"ENGINE": "django.db.backends.sqlite3", "NAME": name}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://u:p@h/db", "scheme 'mysql' is not supported"),
        ("postgres://u:hunter2@h:5432/", "names no database"),
        ("postgres://u:p@h:notaport/db", "invalid port"),
    ],
)
def test_bad_database_urls_are_refused(url, fragment):
    with pytest.raises(ImproperlyConfigured, match=fragment) as info:
        database_from_url(url)
    assert "hunter2" not in str(info.value)  # passwords never reach error messages


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Off")
    monkeypatch.setenv("X_LIST", " a.example, ,b.example ")
    assert env_bool("X_BOOL", True) is False
    assert env_bool("X_UNSET", True) is True
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL='maybe' is not a boolean"):
        env_bool("X_BOOL", True)


# ------------------------------------------------------------------------------------------ development


def test_development_defaults_need_no_server(tmp_path):
    values = settings_in_subprocess(
        tmp_path,
        [
            "DEBUG",
            "DATABASES",
            "CELERY_BROKER_URL",
            "CELERY_BROKER_TRANSPORT_OPTIONS",
            "OR1_RUNS_DIR",
            "SECRET_KEY",
        ],
    )
    data = tmp_path / "data"
    assert values["DEBUG"] is True
    assert values["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert values["DATABASES"]["default"]["NAME"] == str(data / "or1lab.sqlite3")
    assert values["CELERY_BROKER_URL"].startswith("filesystem://")
    options = values["CELERY_BROKER_TRANSPORT_OPTIONS"]
    # One folder for in and out, so that a message one process writes is the one another reads.
    assert options["data_folder_in"] == options["data_folder_out"] == str(data / "broker" / "queue")
    assert Path(options["data_folder_in"]).is_dir() and Path(options["control_folder"]).is_dir()
    assert values["OR1_RUNS_DIR"] == str(data / "runs")
    assert values["SECRET_KEY"].startswith("django-insecure-")


def test_redis_url_selects_the_redis_broker_with_a_long_visibility_timeout(tmp_path):
    values = settings_in_subprocess(
        tmp_path,
        [
            "CELERY_BROKER_URL",
            "CELERY_BROKER_TRANSPORT_OPTIONS",
            "CELERY_RESULT_BACKEND",
            "OR1_LONGEST_TASK_S",
        ],
        REDIS_URL="redis://127.0.0.1:6379/5",
    )
    assert values["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/5"
    assert values["CELERY_RESULT_BACKEND"] == "redis://127.0.0.1:6379/5"
    assert values["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 2 * values["OR1_LONGEST_TASK_S"]
    assert values["OR1_LONGEST_TASK_S"] >= 24 * 3600


def test_celery_app_takes_the_long_job_settings():
    from or1platform.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_ignore_result is True


def test_database_url_is_used_when_set(tmp_path):
    values = settings_in_subprocess(
        tmp_path, ["DATABASES"], DATABASE_URL="postgres://app:app@127.0.0.1:5432/app"
    )
    assert values["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert values["DATABASES"]["default"]["CONN_HEALTH_CHECKS"] is True


# ------------------------------------------------------------------------------------------- production


@pytest.mark.parametrize("mode", [{"OR1_ENV": "production"}, {"DJANGO_DEBUG": "0"}])
def test_production_refuses_to_start_without_a_secret_key(tmp_path, mode):
    out = manage(tmp_path, "check", **mode, DJANGO_ALLOWED_HOSTS="lab.example.org")
    assert out.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in out.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    out = manage(tmp_path, "check", OR1_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    assert out.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in out.stderr


def test_production_passes_check_deploy_without_warnings(tmp_path):
    out = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues (0 silenced)." in out.stdout


def test_production_without_ssl_redirect_still_passes_check_deploy(tmp_path):
    env = production_env(OR1_SECURE_SSL_REDIRECT="0", DJANGO_CSRF_TRUSTED_ORIGINS="https://lab.example.org")
    out = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **env)
    assert out.returncode == 0, out.stdout + out.stderr
    values = settings_in_subprocess(
        tmp_path, ["DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_TRUSTED_ORIGINS"], **env
    )
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_TRUSTED_ORIGINS": ["https://lab.example.org"],
    }


def test_development_mode_fails_check_deploy(tmp_path):
    """The check is able to fail: the development defaults are not fit for production."""
    out = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode != 0
    assert "security.W018" in out.stderr + out.stdout  # DEBUG on


def test_production_static_files_collect_into_a_hashed_manifest(tmp_path):
    static_root = tmp_path / "static"
    out = manage(tmp_path, "collectstatic", "--noinput", **production_env(OR1_STATIC_ROOT=str(static_root)))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    for name in ("vendor/htmx.min.js", "css/or1.css", "admin/css/base.css"):
        assert (static_root / manifest[name]).is_file() and (static_root / (manifest[name] + ".gz")).is_file()
