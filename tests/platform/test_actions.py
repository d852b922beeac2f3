"""Domain actions: experiments are validated by the trainer's spec contract; runs freeze their spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from experiments.actions import create_experiment_from_spec, create_run, duplicate_experiment
from experiments.models import Membership, RunStatus
from or1_train.spec import SpecError


def test_create_experiment_keeps_the_spec_as_written(project, alice, spec_data):
    experiment = create_experiment_from_spec(
        project=project, user=alice, spec=spec_data, tags=["b", "a", "b"]
    )
    assert experiment.name == "tiny"
    assert experiment.description == spec_data["description"]
    assert experiment.spec == spec_data  # not expanded with defaults
    assert experiment.tags == ["a", "b"]
    assert experiment.created_by == alice
    assert experiment.parsed_spec.total_steps == 5


def test_an_invalid_spec_is_refused_with_field_paths(project, alice, spec_data):
    spec_data["stages"][1]["max_response_tokens"] = 32
    with pytest.raises(SpecError) as info:
        create_experiment_from_spec(project=project, user=alice, spec=spec_data)
    assert [e.path for e in info.value.errors] == ["stages[1].max_response_tokens"]
    assert "stages[1].max_response_tokens: must be >= stages[0] (64)" in str(info.value)

    spec_data["entropy"] = {"target": -1, "tagret": 0.3}
    with pytest.raises(SpecError) as info:
        create_experiment_from_spec(project=project, user=alice, spec=spec_data)
    assert {e.path for e in info.value.errors} == {"entropy.target", "entropy.tagret"}
    assert not project.experiments.exists()


def test_viewers_and_outsiders_cannot_create_experiments(project, make_user, spec_data):
    viewer, outsider = make_user("victor"), make_user("mallory")
    Membership.objects.create(team=project.team, user=viewer, role=Membership.Role.VIEWER)
    for user in (viewer, outsider):
        with pytest.raises(PermissionDenied):
            create_experiment_from_spec(project=project, user=user, spec=spec_data)
    assert not project.experiments.exists()


def test_experiment_names_are_unique_in_a_project(experiment, alice, spec_data):
    with pytest.raises(ValidationError) as info:
        create_experiment_from_spec(project=experiment.project, user=alice, spec=spec_data)
    assert "already has an experiment named 'tiny'" in str(info.value.message_dict["name"])


def test_duplicate_and_edit_links_to_the_parent(experiment, alice):
    edited = dict(experiment.spec, seed=7)
    child = duplicate_experiment(experiment, user=alice, name="tiny seed 7", spec=edited)
    assert child.parent == experiment and child.spec["seed"] == 7 and child.tags == experiment.tags
    assert list(experiment.children.all()) == [child]


def test_create_run_freezes_the_full_spec_and_plans_the_stages(experiment, alice):
    run = create_run(experiment, user=alice)
    assert run.status == RunStatus.QUEUED
    assert run.total_steps == 5 and run.launcher == "local"
    # Frozen with every default filled in, so later changes to defaults never change what this run ran with.
    assert run.spec_as_launched["entropy"]["target"] == 0.2
    assert "entropy" not in experiment.spec
    assert Path(run.run_dir) == Path(settings.OR1_RUNS_DIR) / f"run-{run.pk}"
    stages = [(s.index, s.name, s.max_response_tokens, s.start_step, s.end_step) for s in run.stages.all()]
    assert stages == [(0, "short", 64, 0, 3), (1, "long", 128, 3, 5)]
    assert run.events.get().data == {"to": "queued", "total_steps": 5}

    experiment.spec["seed"] = 123
    experiment.save()
    run.refresh_from_db()
    assert run.spec_as_launched["seed"] == 0


def test_viewers_cannot_start_runs(experiment, make_user):
    viewer = make_user("victor")
    Membership.objects.create(team=experiment.project.team, user=viewer, role=Membership.Role.VIEWER)
    with pytest.raises(PermissionDenied):
        create_run(experiment, user=viewer)
    assert not experiment.runs.exists()
