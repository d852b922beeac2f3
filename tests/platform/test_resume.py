"""Resuming an ended run: the rule (failed or cancelled, with a checkpoint), the roles, the API, the run page.

The cast (``api_cast``): mo's run has a registered checkpoint at step 4; here it is cancelled, and alice's run
has failed with a checkpoint at step 2. Members resume their own runs, admins and owners any, viewers get 403,
the other team 404 (and 403 once the run is shared with it: it reads the run but may not change it). The
launch message itself is read back from the real broker, so the queue and ``--resume`` are what a worker gets.
The whole path, a real trainer cancelled and resumed to the end, is ``tests/workers/test_local_launcher.py``.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from experiments import sharing
from experiments.actions import NotResumable, resume_run
from experiments.models import AuditEntry, Checkpoint, Run, RunEvent, RunStatus
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)
from tests.platform.api_cast import check

S = RunStatus


@pytest.fixture
def ended(cast):
    """mo's run cancelled (checkpoint at step 4), alice's failed with exit 1 (checkpoint at step 2)."""
    cast.own_run.transition_to(S.CANCELLED, reason="cancelled by mo before it started")
    other = cast.other_run
    other.transition_to(S.STARTING)
    other.transition_to(S.RUNNING)
    other.transition_to(S.FAILED, reason="the trainer exited with code 1", exit_code=1)
    Checkpoint.objects.create(run=other, step=2, stage=0, path="/nowhere/step-000002")
    return cast


def url(run) -> str:
    return f"/api/v1/runs/{run.pk}/resume/"


def test_resume_for_every_role(ended, api):
    sharing.share_run(ended.own_run, ended.users["member"], team=ended.beta)  # bob reads it: 403, not 404
    cases = [
        ("resume own", "post", lambda c: url(c.own_run), None,
         {"owner": 200, "admin": 200, "member": 200, "viewer": 403, "outsider": 403}),
        ("resume other's", "post", lambda c: url(c.other_run), None,
         {"owner": 200, "admin": 200, "member": 403, "viewer": 403, "outsider": 404}),
        ("resume another team's", "post", lambda c: url(c.beta_run), None,
         {"owner": 404, "admin": 404, "member": 404, "viewer": 404, "outsider": 409}),  # bob's is queued
    ]
    assert check(ended, api, cases) == []


def test_a_member_resumes_their_cancelled_run_from_its_newest_checkpoint(
    ended, api, settings, django_capture_on_commit_callbacks
):
    settings.OR1_LOCAL_LAUNCH_QUEUE = "launch.never-used"
    host_queue = f"test.resume.{uuid.uuid4().hex[:10]}"
    run = ended.own_run
    Run.objects.filter(pk=run.pk).update(environment={"worker_queue": host_queue})
    Checkpoint.objects.create(run=run, step=2, stage=0, path="/nowhere/step-000002")  # older than step 4

    with django_capture_on_commit_callbacks(execute=True):  # pytest-django never commits: run the send here
        response = api(ended.users["member"]).post(url(run))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["restarts"], body["exit_code"], body["finished_at"]) == ("queued", 1, None, None)
    reason = "resumed by mo from checkpoint step 4"
    assert body["status_reason"] == reason
    event = RunEvent.objects.filter(run=run, kind=RunEvent.Kind.STATUS).order_by("-at", "-id").first()
    assert event.data == {"from": "cancelled", "to": "queued", "reason": reason, "exit_code": None}
    entry = AuditEntry.objects.get(action=AuditEntry.Action.RESUME)
    assert (entry.actor_name, entry.target_id, entry.detail) == ("mo", run.pk, {"checkpoint_step": 4})
    # to the queue of the host the run was on (its run directory holds the checkpoints), with --resume
    assert sent_to(host_queue) == ("workers.tasks.launch", [run.pk], {"resume": True})


def test_a_slurm_run_is_resumed_on_the_slurm_queue(ended, settings, django_capture_on_commit_callbacks):
    settings.OR1_SLURM_QUEUE = f"test.resume.slurm.{uuid.uuid4().hex[:10]}"
    run = ended.other_run
    Run.objects.filter(pk=run.pk).update(launcher=Run.Launcher.SLURM)
    run.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        resume_run(run, ended.users["admin"])
    assert Run.objects.get(pk=run.pk).status_reason == "resumed by ada from checkpoint step 2"
    assert sent_to(settings.OR1_SLURM_QUEUE) == ("workers.tasks.launch_slurm", [run.pk], {"resume": True})


def sent_to(queue: str) -> tuple[str, list, dict]:
    """The one task message waiting on ``queue`` in the configured broker (taken off it): task, args, kwargs."""
    from or1platform.celery import app

    with app.connection_for_read() as connection:
        waiting = connection.SimpleQueue(queue)
        try:
            message = waiting.get(timeout=5)
            message.ack()
            with pytest.raises(waiting.Empty):  # and only one
                waiting.get_nowait()
        finally:
            waiting.queue.delete()
            waiting.close()
    args, kwargs, _ = message.payload
    return message.headers["task"], args, kwargs


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (S.QUEUED, "it is queued; only a failed or cancelled run can be resumed"),
        (S.RUNNING, "it is running; only a failed or cancelled run can be resumed"),
        (S.CANCELLING, "it is cancelling; only a failed or cancelled run can be resumed"),
        (S.SUCCEEDED, "it succeeded: it has no steps left to run"),
    ],
)
def test_a_run_that_has_not_ended_or_succeeded_is_refused_with_409(cast, api, status, why):
    Run.objects.filter(pk=cast.own_run.pk).update(status=status)
    response = api(cast.users["member"]).post(url(cast.own_run))
    assert response.status_code == 409
    assert response.json() == {
        "status": 409, "code": "conflict", "detail": f"run {cast.own_run.pk} cannot be resumed: {why}", "errors": [],
    }
    assert Run.objects.get(pk=cast.own_run.pk).status == status and not AuditEntry.objects.filter(action="resume")


def test_a_run_without_a_checkpoint_is_refused(ended, django_capture_on_commit_callbacks):
    run = ended.other_run
    run.checkpoints.all().delete()
    with django_capture_on_commit_callbacks(execute=False) as sent, pytest.raises(NotResumable) as refused:
        resume_run(run, ended.users["owner"])
    assert "no checkpoint to resume from" in str(refused.value) and not sent
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.exit_code, stored.restarts) == (S.FAILED, 1, 0)


def test_resume_is_in_the_schema_with_its_409(cast, api):
    schema = api(cast.users["viewer"]).get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/runs/{id}/resume/"]["post"]
    assert {"200", "403", "404", "409"} <= set(operation["responses"])
    assert "checkpoint" in operation["description"]


# ---------------------------------------------------------------------------------------- the run page


def status_panel(client, run) -> str:
    return client.get(reverse("run-status", args=[run.pk])).content.decode()


def test_the_resume_button_shows_only_when_the_user_may_resume(ended, client):
    own, other = ended.own_run, ended.other_run
    button = f'action="{reverse("run-resume", args=[own.pk])}"'
    client.force_login(ended.users["member"])
    assert button in status_panel(client, own) and "Resume from step 4" in status_panel(client, own)
    assert "run-resume" not in status_panel(client, other) and "Resume" not in status_panel(client, other)
    client.force_login(ended.users["viewer"])
    assert "Resume" not in status_panel(client, own)
    client.force_login(ended.users["admin"])
    assert "Resume from step 2" in status_panel(client, other)
    other.checkpoints.all().delete()
    assert "Resume" not in status_panel(client, other)  # nothing to resume from
    Run.objects.filter(pk=own.pk).update(status=S.SUCCEEDED)
    assert "Resume" not in status_panel(client, own)


def test_resume_from_the_run_page(ended, client, django_capture_on_commit_callbacks):
    run = ended.own_run
    client.force_login(ended.users["member"])
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = client.post(reverse("run-resume", args=[run.pk]), follow=True)
    html = response.content.decode()
    assert response.redirect_chain == [(reverse("run-detail", args=[run.pk]), 302)] and len(sent) == 1
    assert f"Resuming run #{run.pk} from its newest checkpoint" in html and "badge-queued" in html
    assert "resumed by mo from checkpoint step 4" in html
    # a second click meets a queued run: refused in words
    again = client.post(reverse("run-resume", args=[run.pk]), follow=True).content.decode()
    assert (
        f"Cannot resume run #{run.pk}: it is queued; only a failed or cancelled run can be resumed." in again
    )


def test_resume_from_the_page_refuses_viewers_outsiders_and_get(ended, client):
    run = ended.own_run
    client.force_login(ended.users["viewer"])
    assert client.post(reverse("run-resume", args=[run.pk])).status_code == 403
    client.force_login(ended.users["outsider"])
    assert client.post(reverse("run-resume", args=[run.pk])).status_code == 404
    client.force_login(ended.users["member"])
    assert client.get(reverse("run-resume", args=[run.pk])).status_code == 405
    assert Run.objects.get(pk=run.pk).status == S.CANCELLED
