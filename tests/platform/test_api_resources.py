"""What the endpoints do: spec errors at their paths in one error format, launch and cancel, filters,
ordering and pages, the metric query and its downsampling, checkpoint downloads, sweeps through the API."""

from __future__ import annotations

import pytest

from experiments.models import AuditEntry, MetricPoint, Run, RunStatus, Sweep
from experiments.models.metrics import Point
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)


@pytest.fixture
def owner(cast, api):
    return api(cast.users["owner"])


def test_a_spec_error_names_its_field_inside_the_body(cast, owner):
    spec = dict(cast.experiment.spec, name="bad")
    spec["entropy"] = {"target": -1, "delta": "lots"}
    response = owner.post("/api/v1/experiments/", {"project": cast.project.pk, "spec": spec}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_spec" and body["status"] == 400
    assert body["errors"] == [
        {"path": "spec.entropy.target", "message": "must be > 0.0"},
        {"path": "spec.entropy.delta", "message": "must be a number"},
    ]
    # a cross-field rule names the field to fix too
    spec = dict(
        cast.experiment.spec,
        stages=[cast.experiment.spec["stages"][0], dict(cast.experiment.spec["stages"][1], max_response_tokens=16)],
    )
    launch = owner.post("/api/v1/runs/", {"experiment": cast.experiment.pk, "spec": spec}, format="json")
    assert launch.status_code == 400
    assert launch.json()["errors"] == [
        {"path": "spec.stages[1].max_response_tokens", "message": "must be >= stages[0] (64)"}
    ]
    dupe = owner.post("/api/v1/experiments/", {"project": cast.project.pk, "spec": cast.experiment.spec}, format="json")
    assert dupe.status_code == 400 and dupe.json()["errors"][0]["path"] == "name"
    nested = owner.post(
        "/api/v1/dataset-mixes/",
        {"team": cast.alpha.pk, "name": "m", "entries": [{"source": cast.source.pk, "weight": -1}]},
        format="json",
    )
    assert nested.status_code == 400 and nested.json()["errors"][0]["path"] == "entries[0].weight"


def test_create_experiment_then_launch_and_cancel_a_run(cast, owner, django_capture_on_commit_callbacks):
    spec = dict(cast.experiment.spec, name="made-by-api")
    created = owner.post(
        "/api/v1/experiments/", {"project": cast.project.pk, "spec": spec, "tags": ["api", "api"]}, format="json"
    )
    assert created.status_code == 201
    experiment = created.json()
    assert experiment["name"] == "made-by-api" and experiment["tags"] == ["api"] and experiment["spec_errors"] == []
    edited = dict(spec, seed=7)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        launched = owner.post("/api/v1/runs/", {"experiment": experiment["id"], "spec": edited}, format="json")
    assert launched.status_code == 201 and len(sent) == 1
    run = launched.json()
    assert run["status"] == "queued" and run["spec_as_launched"]["seed"] == 7 and run["total_steps"] == 5
    assert [s["max_response_tokens"] for s in run["stages"]] == [64, 128]
    cancelled = owner.post(f"/api/v1/runs/{run['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = owner.post(f"/api/v1/runs/{run['id']}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    events = owner.get(f"/api/v1/runs/{run['id']}/events/").json()
    assert [e["data"].get("to") for e in events["results"]] == ["queued", "cancelled"]
    copy = owner.post(f"/api/v1/experiments/{experiment['id']}/duplicate/", {"name": "copy"}, format="json")
    assert copy.status_code == 201 and copy.json()["parent"] == experiment["id"]


def test_run_filters_ordering_and_pages(cast, owner):
    Run.objects.filter(pk=cast.other_run.pk).update(status=RunStatus.FAILED)
    ids = lambda response: [r["id"] for r in response.json()["results"]]  # noqa: E731
    assert ids(owner.get("/api/v1/runs/?status=failed")) == [cast.other_run.pk]
    assert set(ids(owner.get("/api/v1/runs/?status=failed,queued"))) == set(ids(owner.get("/api/v1/runs/")))
    assert cast.other_run.pk not in ids(owner.get("/api/v1/runs/?active=true"))
    assert ids(owner.get("/api/v1/runs/?active=false")) == [cast.other_run.pk]
    assert set(ids(owner.get(f"/api/v1/runs/?sweep={cast.sweep.pk}"))) == set(
        cast.sweep.runs.values_list("pk", flat=True)
    )
    assert len(ids(owner.get("/api/v1/runs/?tag=tiny"))) == 3 and ids(owner.get("/api/v1/runs/?tag=nope")) == []
    everything = ids(owner.get("/api/v1/runs/?ordering=id"))
    assert everything == sorted(everything)
    first = owner.get("/api/v1/runs/?ordering=id&page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"].endswith("page=2&page_size=2")
    assert owner.get("/api/v1/runs/?page=9").status_code == 404
    bad = owner.get("/api/v1/runs/?status=flying&experiment=x")
    assert bad.status_code == 400 and {e["path"] for e in bad.json()["errors"]} == {"status", "experiment"}


def test_metric_query_downsamples_long_series_and_is_exact_when_zoomed(cast, owner):
    MetricPoint.upsert(cast.own_run, [Point("actor/entropy_loss", s, 1.0 if s != 777 else 9.0) for s in range(5000)])
    MetricPoint.upsert(cast.other_run, [Point("actor/entropy_loss", s, 0.5) for s in range(100)])
    url = f"/api/v1/metrics/?run={cast.own_run.pk},{cast.other_run.pk}&name=actor/entropy_loss"
    whole = owner.get(url + "&max_points=200").json()
    long = next(s for s in whole["series"] if s["run"] == cast.own_run.pk)
    assert whole["bucket_width"] > 1 and not long["exact"] and len(long["steps"]) <= 210
    assert max(long["values"]) == 9.0  # the one-step spike survives the downsampling
    zoom = owner.get(url + "&step_min=700&step_max=800&max_points=200").json()
    long = next(s for s in zoom["series"] if s["run"] == cast.own_run.pk)
    assert zoom["bucket_width"] == 1 and long["exact"] and long["steps"] == list(range(700, 801))
    assert owner.get(f"/api/v1/metrics/names/?run={cast.own_run.pk}").json()["names"] == [
        "actor/entropy_loss",
        "critic/score/mean",
    ]
    assert owner.get(f"/api/v1/metrics/?run={cast.beta_run.pk}&name=x").status_code == 404
    bad = owner.get(url + "&step_min=9&step_max=1")
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "step_max"


def test_checkpoint_registry_and_downloads(cast, owner):
    listed = owner.get(f"/api/v1/checkpoints/?project={cast.project.pk}").json()["results"]
    assert [c["id"] for c in listed] == [cast.checkpoint.pk]
    item = listed[0]
    assert item["hf_path"].endswith("step-000004/model") and item["scores"][0]["avg_at_k"] == 0.5
    assert {f["path"] for f in item["files"]} == {"model/config.json", "model/model.safetensors"}
    manifest = owner.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/manifest/").json()
    assert manifest["step"] == 4
    got = owner.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/files/model/config.json")
    assert got.status_code == 200 and b"".join(got.streaming_content) == b'{"hidden_size": 64}'
    for name in ("../secret.txt", "model/../../secret.txt", "/etc/passwd", "trainer_state.json"):
        assert owner.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/files/{name}").status_code == 404, name


def test_a_3x2_grid_sweep_with_2_seeds_through_the_api(cast, owner, django_capture_on_commit_callbacks):
    body = {
        "base_experiment": cast.experiment.pk,
        "name": "grid",
        "space": {"grid": {"entropy.target": [0.1, 0.2, 0.3], "stages[0].max_response_tokens": [64, 256]}},
        "seeds": 2,
        "concurrency": 4,
    }
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = owner.post("/api/v1/sweeps/", body, format="json")
    assert response.status_code == 201, response.content
    sweep = response.json()
    # 256 tokens in stage 0 outgrow stage 1 (128): those 6 points are invalid and never launched
    assert len(sweep["points"]) == 12 and sweep["counts"] == {
        "pending": 2,
        "launched": 4,
        "invalid": 6,
        "not_launched": 0,
    }
    assert len(sent) == 4
    invalid = [p for p in sweep["points"] if p["state"] == "invalid"]
    assert all(p["errors"][0]["path"] == "stages[1].max_response_tokens" and p["run"] is None for p in invalid)
    assert sweep["comparison_url"] == f"/compare/?sweep={sweep['id']}&group=entropy.target"
    results = owner.get(f"/api/v1/sweeps/{sweep['id']}/results/").json()
    assert len(results) == 6 and {len(r["states"]) for r in results} == {2}
    cancelled = owner.post(f"/api/v1/sweeps/{sweep['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["not_launched"] == 2
    assert Sweep.objects.get(pk=sweep["id"]).runs.filter(status=RunStatus.CANCELLED).count() == 4
    malformed = owner.post(
        "/api/v1/sweeps/", dict(body, name="x", space={"grid": {"stages[9].steps": [1]}}), format="json"
    )
    assert malformed.status_code == 400 and malformed.json()["errors"][0]["path"] == "space.grid.stages[9].steps"


def test_members_are_managed_by_owners_and_a_team_keeps_an_owner(cast, owner):
    alice = cast.users["owner"]
    members = f"/api/v1/teams/{cast.alpha.pk}/members/"
    assert {m["username"]: m["role"] for m in owner.get(members).json()["results"]} == {
        "ada": "admin",
        "alice": "owner",
        "mo": "member",
        "vera": "viewer",
    }
    added = owner.post(members, {"username": "bob", "role": "viewer"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "viewer"
    assert owner.post(members, {"username": "nobody"}, format="json").json()["errors"][0]["path"] == "username"
    last = owner.patch(f"{members}{alice.pk}/", {"role": "admin"}, format="json")
    assert last.status_code == 400 and "at least one owner" in last.json()["detail"]
    assert owner.delete(f"{members}{alice.pk}/").status_code == 400
    assert owner.delete(f"{members}{cast.users['viewer'].pk}/").status_code == 204
    actions = list(AuditEntry.objects.filter(target_type="user").values_list("action", "target_label"))
    assert actions == [("member.remove", "vera"), ("member.add", "bob")]


def test_the_schema_is_valid_openapi_and_the_docs_are_served_locally(cast, client):
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    cancel = schema["paths"]["/api/v1/runs/{id}/cancel/"]["post"]["responses"]
    assert set(cancel) == {"200", "400", "401", "403", "404", "409"}
    assert cancel["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert client.get("/api/schema/").status_code == 200
    client.force_login(cast.users["viewer"])
    docs = client.get("/api/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in docs and "cdn" not in docs.lower()
