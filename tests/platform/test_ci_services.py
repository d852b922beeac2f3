"""The suite runs against the services it was given, never a silent fallback.

In CI (``CI`` set) the database must be PostgreSQL and the Celery broker Redis, and the broker must answer.
Everywhere, a DATABASE_URL that is set must be the database in use.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection


def test_database_in_use_is_the_configured_one(db):
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://", "pgsql://")) else "sqlite"
    assert connection.vendor == expected


@pytest.mark.skipif(
    not os.environ.get("CI"), reason="CI only: locally the embedded SQLite/filesystem defaults are fine"
)
def test_ci_runs_on_postgresql_and_redis(db):
    assert connection.vendor == "postgresql", "CI must test against PostgreSQL: set DATABASE_URL"
    assert settings.CELERY_BROKER_URL.startswith("redis://"), (
        "CI must use Redis: set REDIS_URL or CELERY_BROKER_URL"
    )
    from or1platform.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
