"""``/healthz`` and ``/readyz`` through Django's test client against the real database and broker of the test
run, with a broker and a Slurm cluster pointed at ports where nothing listens for the not-ready cases; and the
JSON log formatter production uses."""

from __future__ import annotations

import json
import logging
import socket
import sys

import pytest

from or1platform.jsonlog import JsonFormatter


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_slurm(monkeypatch):
    for name in ("SLURM_REST_URL", "SLURM_REST_TOKEN", "SLURM_JWT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.django_db
def test_ready_when_database_and_broker_answer(client, no_slurm):
    from django.db import connection

    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200 and body["ready"] is True, body
    checks = {c["name"]: c for c in body["checks"]}
    assert set(checks) == {"database", "broker"}  # no Slurm cluster configured: nothing to ping
    assert checks["database"]["detail"] == connection.vendor and checks["broker"]["ok"]
    assert "reasons" not in body and response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_is_the_reason(client, settings, dead_port, no_slurm):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{dead_port}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["ready"] is False
    assert body["reasons"] == [
        next(f"broker: {c['detail']}" for c in body["checks"] if c["name"] == "broker")
    ]
    assert "OperationalError" in body["reasons"][0] and f"127.0.0.1:{dead_port}" in body["reasons"][0]
    assert client.get("/healthz").status_code == 200  # liveness does not depend on the broker


def slurm_cluster_model():
    from django.apps import apps

    return next((m for m in apps.get_models() if m.__name__ == "SlurmCluster"), None)


def configure_cluster(monkeypatch, url: str, token: str) -> str:
    """Configure one Slurm cluster the way this checkout reads them; returns the name of its readiness check.

    With clusters stored in the database (``experiments.models.SlurmCluster``) a row of a team; otherwise the
    environment's SLURM_REST_* variables."""
    model = slurm_cluster_model()
    if model is None:
        monkeypatch.setenv("SLURM_REST_URL", url)
        monkeypatch.setenv("SLURM_REST_USER", "slurmci")
        monkeypatch.setenv("SLURM_REST_TOKEN", token)
        return "slurm:env"
    from experiments.models import Team

    team = Team.objects.create(name="Cluster owners", slug="cluster-owners")
    cluster = model(team=team, name="main", rest_url=url, user="slurmci", runs_dir="/tmp/or1-runs")
    cluster.set_token(token)
    cluster.save()
    return f"slurm:{cluster}"


@pytest.mark.django_db
def test_each_configured_slurm_cluster_is_pinged(client, monkeypatch, dead_port, no_slurm):
    check = configure_cluster(
        monkeypatch, f"http://127.0.0.1:{dead_port}", "not-checked-before-the-connection"
    )
    body = client.get("/readyz").json()
    assert body["ready"] is False
    (reason,) = body["reasons"]
    assert reason.startswith(f"{check}: SlurmUnavailable") and f"127.0.0.1:{dead_port}" in reason


@pytest.mark.django_db
@pytest.mark.slurm
def test_the_local_slurm_cluster_counts_as_ready(client, monkeypatch):
    import os

    url, token = os.environ.get("SLURM_REST_URL"), os.environ.get("SLURM_REST_TOKEN")
    if not (url and token):
        pytest.skip("needs the local Slurm cluster (make services)")
    check = configure_cluster(monkeypatch, url, token)
    body = client.get("/readyz").json()
    slurm = next(c for c in body["checks"] if c["name"] == check)
    assert slurm["ok"] and slurm["detail"].startswith("Slurm "), slurm


def test_json_log_lines_carry_level_logger_extra_fields_and_tracebacks():
    formatter = JsonFormatter()
    try:
        raise ValueError("bad value")
    except ValueError:
        record = logging.LogRecord(
            "workers.reconcile", logging.ERROR, __file__, 1, "run %s: %s", (7, "x"), None
        )
        record.exc_info = sys.exc_info()
    record.run_id = 7  # what `extra={"run_id": 7}` does
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "workers.reconcile"
    assert entry["message"] == "run 7: x" and entry["run_id"] == 7
    assert entry["exc_info"].startswith("Traceback") and "ValueError: bad value" in entry["exc_info"]
    assert entry["time"].endswith("+00:00")
