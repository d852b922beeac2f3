"""The admin: every model is registered and its pages render for a superuser."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from experiments.admin import ReadOnlyAdmin
from experiments.models import (
    Checkpoint,
    DatasetMix,
    DatasetMixEntry,
    DatasetSource,
    EvaluationResult,
    MetricPoint,
    RunEvent,
    Sweep,
)


@pytest.fixture
def every_model(run):
    """One row of every model, so each change page has something to show."""
    team = run.experiment.project.team
    source = DatasetSource.objects.create(team=team, name="easy", path="/data/easy.jsonl")
    mix = DatasetMix.objects.create(team=team, name="mix")
    DatasetMixEntry.objects.create(mix=mix, source=source, weight=2)
    checkpoint = Checkpoint.objects.create(run=run, step=3, stage=0, path="/ckpt/3", manifest={"files": []})
    EvaluationResult.objects.create(
        checkpoint=checkpoint, benchmark="aime24", k=8, num_samples=240, avg_at_k=0.4, temperature=1.0
    )
    MetricPoint.objects.create(run=run, name="entropy", step=1, value=0.3)
    RunEvent.objects.create(run=run, message="hello")
    Sweep.objects.create(project=run.experiment.project, base_experiment=run.experiment, name="targets")
    return run


def test_every_experiments_model_is_in_the_admin():
    missing = [m.__name__ for m in apps.get_app_config("experiments").get_models() if m not in admin.site._registry]
    assert missing == []


def test_admin_pages_render_for_a_superuser(client, django_user_model, every_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "x"))
    for model in apps.get_app_config("experiments").get_models():
        meta = model._meta
        first = model.objects.first()
        writable = not isinstance(admin.site._registry[model], ReadOnlyAdmin)  # platform-written records
        pages = [("changelist", [])] + ([("add", [])] if writable else []) + ([("change", [first.pk])] if first else [])
        for name, args in pages:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_{name}", args=args)
            response = client.get(url)
            assert response.status_code == 200, f"{url}: {response.status_code}"


def test_run_admin_shows_the_frozen_spec_as_readable_json(client, django_user_model, run):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "x"))
    html = client.get(reverse("admin:experiments_run_change", args=[run.pk])).content.decode()
    assert "&quot;max_response_tokens&quot;: 128" in html  # indented JSON, one key per line


def test_experiment_admin_validates_the_spec_with_field_paths(client, django_user_model, experiment):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "x"))
    spec = dict(experiment.spec, stages=[dict(experiment.spec["stages"][0], mini_batch=3)])
    response = client.post(
        reverse("admin:experiments_experiment_change", args=[experiment.pk]),
        {
            "project": experiment.project_id,
            "name": experiment.name,
            "description": "",
            "spec": json.dumps(spec),
            "tags": "[]",
        },
    )
    assert response.status_code == 200
    assert "stages[0].rollout_batch: must be a multiple of mini_batch (3)" in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.spec["stages"][0]["mini_batch"] == 2
