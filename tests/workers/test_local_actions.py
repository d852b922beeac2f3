"""launch_run / cancel_run / relaunch_run: permissions, the frozen spec, the environment record, and that the
task is handed to Celery only when the transaction commits (captured here; the live worker tests send it)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from experiments.actions import cancel_run, launch_run, relaunch_run, worker_queue
from experiments.models import InvalidTransition, Membership, Run, RunStatus
from or1_train.spec import SpecError

pytestmark = pytest.mark.django_db


def test_launch_run_freezes_the_spec_and_sends_the_task_on_commit(
    experiment, alice, settings, django_capture_on_commit_callbacks
):
    settings.OR1_LOCAL_LAUNCH_QUEUE = "host.gpu-7"
    edited = dict(experiment.spec, seed=11)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = launch_run(experiment, alice, spec=edited)
    assert len(callbacks) == 1  # nothing reaches the broker before the row is visible
    assert run.status == RunStatus.QUEUED and run.spec_as_launched["seed"] == 11 and experiment.spec.get("seed") is None
    assert run.spec_as_launched["entropy"]["target"] == 0.2  # frozen with every default
    assert run.environment["packages"]["torch"] and run.environment["gpus"] == "cpu"
    assert run.environment["host"] and not run.ingest_token_hash  # the worker issues the token
    assert worker_queue(run) == "host.gpu-7"


def test_launch_run_refuses_viewers_invalid_specs_and_unavailable_launchers(experiment, make_user, alice):
    viewer = make_user("victor")
    Membership.objects.create(team=experiment.project.team, user=viewer, role=Membership.Role.VIEWER)
    with pytest.raises(PermissionDenied):
        launch_run(experiment, viewer)

    bad = dict(experiment.spec, stages=[dict(experiment.spec["stages"][0], group_size=1)])
    with pytest.raises(SpecError) as info:
        launch_run(experiment, alice, spec=bad)
    assert [e.path for e in info.value.errors] == ["stages[0].group_size"]

    with pytest.raises(ValidationError) as info:
        launch_run(experiment, alice, spec=dict(experiment.spec, resources={"launcher": "slurm"}))
    # A Slurm run needs one of the team's registered clusters (tests/platform/test_slurm_clusters.py).
    assert "Alpha has no Slurm cluster registered yet" in str(info.value.message_dict["resources.cluster"])
    assert not Run.objects.exists()


def test_cancel_run_cancels_a_queued_run_at_once(run, alice, make_user, django_capture_on_commit_callbacks):
    outsider = make_user("mallory")
    with pytest.raises(PermissionDenied):
        cancel_run(run, outsider)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cancel_run(run, alice)
    assert not callbacks and Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        cancel_run(run, alice)


def test_cancel_run_asks_the_runs_host(run, alice, django_capture_on_commit_callbacks):
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    run.environment = {"worker_queue": "host.gpu-3"}
    run.save()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cancel_run(run, alice)
    assert len(callbacks) == 1 and worker_queue(run) == "host.gpu-3"
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLING


def test_relaunch_run_requeues_with_one_more_restart(run, django_capture_on_commit_callbacks):
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        relaunch_run(run, reason="lost")
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.restarts, stored.status_reason) == (RunStatus.QUEUED, 1, "lost")
    assert len(callbacks) == 1


def test_runs_queued_too_long_are_found_for_a_second_launch(run, experiment, alice):
    from datetime import timedelta

    from django.utils import timezone

    from experiments.actions import create_run
    from workers.reconcile import RESEND_LAUNCH_AFTER_S, stale_queued_runs

    fresh = create_run(experiment, user=alice)
    old = timezone.now() - timedelta(seconds=RESEND_LAUNCH_AFTER_S + 5)
    run.events.filter(data__to=RunStatus.QUEUED).update(at=old)
    assert stale_queued_runs() == [run]
    run.transition_to(RunStatus.STARTING)
    assert stale_queued_runs() == [] and fresh.status == RunStatus.QUEUED
