"""Constraints the database enforces, and the team visibility rule."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from experiments.models import (
    Checkpoint,
    DatasetMix,
    DatasetMixEntry,
    DatasetSource,
    EvaluationResult,
    Experiment,
    Membership,
    MetricPoint,
    Project,
    Run,
    Team,
)
from experiments.models.metrics import Point
from or1_train.spec import parse_spec


def test_metric_points_are_unique_per_run_name_step(run):
    MetricPoint.objects.create(run=run, name="reward/mean", step=3, value=0.5)
    MetricPoint.objects.create(run=run, name="reward/mean", step=4, value=0.6)
    MetricPoint.objects.create(run=run, name="entropy", step=3, value=1.2)
    with pytest.raises(IntegrityError), transaction.atomic():
        MetricPoint.objects.create(run=run, name="reward/mean", step=3, value=0.7)
    assert MetricPoint.objects.filter(run=run).count() == 3


def test_upsert_replaces_a_replayed_point_instead_of_duplicating_it(run):
    batch = [Point("reward/mean", 0, 0.1, 1.0), Point("reward/mean", 1, 0.2, 2.0), Point("entropy", 0, 1.5)]
    assert MetricPoint.upsert(run, batch) == 3
    MetricPoint.upsert(run, [Point("reward/mean", 1, 0.25, 2.5), Point("reward/mean", 2, 0.3, 3.0)])
    rows = list(
        MetricPoint.objects.filter(run=run, name="reward/mean").order_by("step").values_list("step", "value")
    )
    assert rows == [(0, 0.1), (1, 0.25), (2, 0.3)]
    assert MetricPoint.objects.get(run=run, name="reward/mean", step=1).wall_time == 2.5
    assert MetricPoint.objects.filter(run=run).count() == 4


def test_checkpoints_are_unique_per_run_step(run):
    Checkpoint.objects.create(run=run, step=2, stage=0, path="/ckpt/2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Checkpoint.objects.create(run=run, step=2, stage=0, path="/ckpt/2-again")


def test_an_evaluation_needs_a_run_or_a_checkpoint(run):
    checkpoint = Checkpoint.objects.create(run=run, step=5, stage=1, path="/ckpt/5")
    common = {"benchmark": "aime24", "k": 8, "num_samples": 240, "avg_at_k": 0.4, "temperature": 1.0}
    EvaluationResult.objects.create(run=run, step=5, **common)
    EvaluationResult.objects.create(checkpoint=checkpoint, **common)
    with pytest.raises(IntegrityError), transaction.atomic():
        EvaluationResult.objects.create(**common)


def test_membership_is_unique_per_team_and_user(team, alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(team=team, user=alice, role=Membership.Role.VIEWER)


def test_dataset_mix_weights_are_positive_and_make_a_valid_spec_section(team, spec_data):
    easy = DatasetSource.objects.create(team=team, name="easy", path="/data/easy.jsonl", format="jsonl")
    hard = DatasetSource.objects.create(team=team, name="hard", path="/data/hard.parquet", format="parquet")
    mix = DatasetMix.objects.create(team=team, name="easy-heavy")
    DatasetMixEntry.objects.create(mix=mix, source=easy, weight=3)
    DatasetMixEntry.objects.create(mix=mix, source=hard, weight=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        DatasetMixEntry.objects.create(
            mix=DatasetMix.objects.create(team=team, name="bad"), source=easy, weight=0
        )

    spec = parse_spec(spec_data | {"data": mix.as_spec_data()})
    assert [s.path for s in spec.data.sources] == ["/data/easy.jsonl", "/data/hard.parquet"]
    assert spec.data.percentages() == [75.0, 25.0]


def test_a_mix_cannot_use_another_teams_dataset(team):
    other = Team.objects.create(name="Beta", slug="beta")
    foreign = DatasetSource.objects.create(team=other, name="theirs", path="/data/theirs.jsonl")
    entry = DatasetMixEntry(mix=DatasetMix.objects.create(team=team, name="mine"), source=foreign, weight=1)
    with pytest.raises(ValidationError, match="its own team's datasets"):
        entry.full_clean()


def test_objects_are_visible_only_to_their_teams_members(run, make_user):
    experiment = run.experiment
    outsider, viewer = make_user("mallory"), make_user("victor")
    Membership.objects.create(team=experiment.project.team, user=viewer, role=Membership.Role.VIEWER)
    other_team = Team.objects.create(name="Beta", slug="beta")
    Membership.objects.create(team=other_team, user=outsider, role=Membership.Role.OWNER)

    for user in (experiment.created_by, viewer):
        assert list(Team.objects.visible_to(user)) == [experiment.project.team]
        assert list(Project.objects.visible_to(user)) == [experiment.project]
        assert list(Experiment.objects.visible_to(user)) == [experiment]
        assert list(Run.objects.visible_to(user)) == [run]
    for user in (outsider, AnonymousUser()):
        assert not Project.objects.visible_to(user).exists()
        assert not Experiment.objects.visible_to(user).exists()
        assert not Run.objects.visible_to(user).exists()
    assert list(Team.objects.visible_to(outsider)) == [other_team]


def test_roles_decide_who_may_write(team, alice, make_user):
    viewer = make_user("victor")
    Membership.objects.create(team=team, user=viewer, role=Membership.Role.VIEWER)
    assert team.role_of(alice) == "owner" and team.can_write(alice)
    assert team.role_of(viewer) == "viewer" and not team.can_write(viewer)
    assert team.role_of(make_user("nobody")) is None


def test_a_stored_spec_that_no_longer_validates_reports_its_fields(experiment):
    experiment.spec["stages"][1]["max_response_tokens"] = 32  # shorter than stage 0
    assert experiment.parsed_spec is None
    assert [e.path for e in experiment.spec_errors] == ["stages[1].max_response_tokens"]


def test_the_spec_reads_back_in_the_order_its_models_declare(experiment):
    """jsonb returns keys shortest first (data, loss, name, seed, model, ...): the page shows them as written."""
    experiment.spec = dict(
        experiment.spec, extra_note="kept, last", description="d", loss={"clip_high": 0.28, "clip_low": 0.2}
    )
    experiment.save()
    experiment.refresh_from_db()
    assert list(experiment.spec)[:2] != ["name", "description"]  # what PostgreSQL gives back
    text = experiment.spec_yaml
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "-"))]
    assert keys == ["name", "description", "model", "data", "stages", "loss", "extra_note"]
    assert "loss: {clip_low: 0.2, clip_high: 0.28}" in text
    assert "- {name: short, steps: 3, max_prompt_tokens: 128, max_response_tokens: 64," in text
