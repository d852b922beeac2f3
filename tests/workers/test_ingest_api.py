"""The ingestion API: per-run tokens, idempotent bulk inserts, field-path errors, size limits, NaN/inf.

Requests go through Django's test client to the real views and the real database (PostgreSQL under
``make test``; the non-finite rule differs on SQLite, as ``experiments/ingestion.py`` documents).
"""

from __future__ import annotations

import json
import math
import time

import pytest
from django.db import connection
from django.urls import reverse

from experiments.actions import create_run
from experiments.models import Checkpoint, EvaluationResult, MetricPoint, Run, RunEvent, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(run) -> str:
    return run.issue_ingest_token()


def post(client, run_id: int, endpoint: str, body, token: str | None, raw: bytes | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(
        reverse(f"ingest-{endpoint}", args=[run_id]), data=data, content_type="application/json", **headers
    )


def records(*steps: int, stage: int = 0, **metrics) -> dict:
    values = metrics or {"critic/score/mean": 0.5, "actor/entropy_loss": 1.25}
    return {"records": [{"step": s, "stage": stage, "wall_time": 1.7e9 + s, "metrics": values} for s in steps]}


def event(kind: str, step: int, at: float | None = None, message: str | None = None, **data) -> dict:
    return {
        "kind": kind,
        "message": message or f"{kind} at {step}",
        "step": step,
        "at": at or time.time(),
        "data": data,
    }


def test_points_are_stored_once_and_a_replayed_batch_adds_nothing(client, run, token):
    run.transition_to(RunStatus.STARTING)
    batch = records(1, 2, 3)
    response = post(client, run.pk, "metrics", batch, token)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 6, "stored": 6, "skipped": 0}

    replay = post(client, run.pk, "metrics", batch, token)
    assert replay.status_code == 200 and replay.json() == {"received": 6, "stored": 0, "skipped": 0}
    assert MetricPoint.objects.filter(run=run).count() == 6
    point = MetricPoint.objects.get(run=run, name="actor/entropy_loss", step=2)
    assert (point.value, point.wall_time) == (1.25, 1.7e9 + 2)

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.started_at is not None
    assert (run.current_step, run.current_stage) == (3, 0)
    # An older batch arriving late never moves the run's step backwards.
    assert post(client, run.pk, "metrics", records(1, stage=0, other=1.0), token).status_code == 200
    run.refresh_from_db()
    assert run.current_step == 3 and MetricPoint.objects.filter(run=run).count() == 7


def test_only_the_runs_own_token_may_write_it(client, run, token, alice):
    other = create_run(run.experiment, user=alice)
    other_token = other.issue_ingest_token()

    assert post(client, run.pk, "metrics", records(1), None).status_code == 401
    assert post(client, run.pk, "metrics", records(1), "not-the-token").status_code == 403
    forbidden = post(client, run.pk, "metrics", records(1), other_token)
    assert forbidden.status_code == 403 and forbidden.json()["error"] == f"this token may not write run {run.pk}"
    assert post(client, run.pk, "events", {"events": [event("info", 1)]}, other_token).status_code == 403
    missing = post(client, 999_999, "metrics", records(1), token)
    assert missing.status_code == 404 and "there is no run 999999" in missing.json()["error"]
    assert not MetricPoint.objects.exists() and not RunEvent.objects.filter(data__source="trainer").exists()

    assert post(client, other.pk, "metrics", records(1), other_token).status_code == 200
    # A relaunch issues a new token: the previous launch's trainer can no longer write.
    other.issue_ingest_token()
    assert post(client, other.pk, "metrics", records(2), other_token).status_code == 403


@pytest.mark.parametrize(
    ("endpoint", "body", "path", "words"),
    [
        ("metrics", {"points": []}, "records", 'a list "records"'),
        ("metrics", {"records": [{"step": "1", "metrics": {}}]}, "records[0].step", "whole number"),
        ("metrics", {"records": [{"step": -1, "metrics": {}}]}, "records[0].step", "between 0 and"),
        ("metrics", {"records": [{"step": 1, "metrics": [1]}]}, "records[0].metrics", "name: value"),
        ("metrics", records(1, 2, loss="high"), "records[0].metrics.loss", '"NaN", "Infinity"'),
        ("metrics", records(1, loss=True), "records[0].metrics.loss", "must be a number"),
        ("metrics", records(1, **{"x" * 201: 1.0}), "records[0].metrics", "1 to 200 characters"),
        ("events", {"events": [{"kind": "info", "message": "m", "step": 1}]}, "events[0].at", "seconds since"),
        ("events", {"events": [event("checkpoint", 3, stage=0)]}, "events[0].data.path", "directory"),
        ("events", {"events": [event("eval", 3, benchmark="b", k=0)]}, "events[0].data.k", "between 1 and"),
        ("events", {"events": [event("stage_start", 0)]}, "events[0].data.stage", "whole number"),
        ("checkpoints", {"events": [event("info", 3)]}, "events[0].kind", "'checkpoint' here"),
    ],
)
def test_a_malformed_batch_is_refused_with_the_field_path(client, run, token, endpoint, body, path, words):
    response = post(client, run.pk, endpoint, body, token)
    assert response.status_code == 400, response.content
    assert response.json()["path"] == path and words in response.json()["error"]
    assert not MetricPoint.objects.exists() and not Checkpoint.objects.exists()


def test_a_body_that_is_not_json_is_a_400(client, run, token):
    response = post(client, run.pk, "metrics", None, token, raw=b'{"records": [')
    assert response.status_code == 400 and response.json()["error"].startswith("the body is not JSON")
    assert client.get(reverse("ingest-metrics", args=[run.pk])).status_code == 405


def test_oversized_batches_get_413(client, run, token, settings):
    settings.OR1_INGEST_MAX_POINTS = 10
    too_many = post(client, run.pk, "metrics", records(*range(6)), token)  # 12 points
    assert too_many.status_code == 413 and "more than 10 points" in too_many.json()["error"]
    assert post(client, run.pk, "metrics", records(*range(5)), token).status_code == 200

    settings.OR1_INGEST_MAX_BYTES = 2000
    too_big = post(client, run.pk, "events", {"events": [event("info", 1, message="x" * 3000)]}, token)
    assert too_big.status_code == 413 and "larger than 2000 bytes" in too_big.json()["error"]
    assert MetricPoint.objects.count() == 10 and not RunEvent.objects.filter(data__source="trainer").exists()


def test_non_finite_values_follow_one_rule_and_never_fail(client, run, token):
    # The trainer's spellings, and bare NaN/Infinity tokens (Python's json writes those by default).
    body = records(1, nan="NaN", inf="Infinity", ninf="-Infinity", finite=2.0)
    raw = b'{"records": [{"step": 2, "stage": 0, "wall_time": null, "metrics": {"nan": NaN, "inf": Infinity}}]}'
    first = post(client, run.pk, "metrics", body, token)
    second = post(client, run.pk, "metrics", None, token, raw=raw)
    assert first.status_code == second.status_code == 200
    stored = {(p.name, p.step): p.value for p in MetricPoint.objects.filter(run=run)}
    if connection.vendor == "postgresql":  # stored as IEEE values
        assert first.json() == {"received": 4, "stored": 4, "skipped": 0}
        assert math.isnan(stored[("nan", 1)]) and math.isnan(stored[("nan", 2)])
    else:  # SQLite cannot hold NaN: skipped and counted; infinities are stored
        assert first.json() == {"received": 4, "stored": 3, "skipped": 1}
        assert ("nan", 1) not in stored
    assert stored[("inf", 1)] == stored[("inf", 2)] == math.inf and stored[("ninf", 1)] == -math.inf
    assert stored[("finite", 1)] == 2.0
    assert post(client, run.pk, "metrics", body, token).json()["stored"] == 0


def test_events_update_stages_and_register_checkpoints_and_evaluations(client, run, token):
    manifest = {"step": 3, "stage": 0, "metrics": {"critic/score/mean": 0.25}, "files": [], "size_bytes": 42}
    checkpoint = event(
        "checkpoint",
        3,
        path="/runs/x/checkpoints/step-000003",
        model_dir="/m",
        stage=0,
        size_bytes=42,
        manifest=manifest,
    )
    evaluation = event(
        "eval", 3, benchmark="aime24", k=8, num_samples=240, avg_at_k=0.4, pass_at_k=0.7, temperature=1.0
    )
    stage_events = [event("stage_start", 0, stage=0, name="short"), event("stage_end", 3, stage=0)]
    stage_events.append(event("stage_start", 3, stage=1, name="long"))

    assert post(client, run.pk, "events", {"events": stage_events}, token).json()["stored"] == 3
    assert post(client, run.pk, "checkpoints", {"events": [checkpoint]}, token).json()["stored"] == 1
    assert post(client, run.pk, "events", {"events": [evaluation]}, token).json()["stored"] == 1

    first, second = run.stages.order_by("index")
    assert first.started_at and first.ended_at and second.started_at and second.ended_at is None
    assert Run.objects.get(pk=run.pk).current_stage == 1
    stored = Checkpoint.objects.get(run=run, step=3)
    assert (stored.stage, stored.size_bytes, stored.path) == (0, 42, "/runs/x/checkpoints/step-000003")
    assert stored.manifest == manifest and stored.metrics == {"critic/score/mean": 0.25}
    result = EvaluationResult.objects.get(run=run)
    assert (result.benchmark, result.k, result.num_samples, result.step, result.checkpoint) == (
        "aime24",
        8,
        240,
        3,
        stored,
    )
    assert (result.avg_at_k, result.pass_at_k, result.temperature) == (0.4, 0.7, 1.0)
    row = run.events.get(data__kind="checkpoint")
    assert row.kind == RunEvent.Kind.INFO and "manifest" not in row.data and row.data["step"] == 3

    # Replaying everything stores nothing twice and has no second effect.
    for endpoint, batch in (("events", stage_events), ("checkpoints", [checkpoint]), ("events", [evaluation])):
        assert post(client, run.pk, endpoint, {"events": batch}, token).json()["stored"] == 0
    assert run.events.filter(data__source="trainer").count() == 5
    assert Checkpoint.objects.count() == EvaluationResult.objects.count() == 1


def test_a_resume_event_drops_the_points_of_the_lost_attempt(client, run, token):
    assert post(client, run.pk, "metrics", records(1, 2, 3, 4), token).status_code == 200
    resume = event("resume", 2, message="resumed from step-000002 (step 2)")
    assert post(client, run.pk, "events", {"events": [resume]}, token).json()["stored"] == 1
    assert sorted(set(MetricPoint.objects.values_list("step", flat=True))) == [1, 2]
    assert Run.objects.get(pk=run.pk).current_step == 2

    again = records(3, **{"critic/score/mean": 0.75})
    assert post(client, run.pk, "metrics", again, token).json()["stored"] == 1
    # A replay of the resume event is recognised: the resumed attempt's points stay.
    assert post(client, run.pk, "events", {"events": [resume]}, token).json()["stored"] == 0
    assert MetricPoint.objects.get(run=run, step=3).value == 0.75


@pytest.mark.django_db(transaction=True)
def test_the_same_events_delivered_at_once_by_two_writers_are_stored_once(run):
    """The trainer's HTTP sink and the reconciler's backfill can post one batch at the same moment (seen in
    CI as two ``resume`` events); each writer holds the run's row, so exactly one stores each event."""
    import threading

    from django.db import connections

    from experiments.ingestion import store_events

    batches = [{"events": [event("warning", i, at=1.7e9 + i) for i in range(k, k + 20)]} for k in range(0, 200, 20)]
    for batch in batches:
        start = threading.Barrier(2)
        stored = []

        def deliver(batch=batch, start=start, stored=stored):
            try:
                start.wait()
                stored.append(store_events(run, batch).stored)
            finally:
                connections.close_all()

        writers = [threading.Thread(target=deliver) for _ in range(2)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert sorted(stored) == [0, 20]
    assert RunEvent.objects.filter(run=run, data__kind="warning").count() == 200
