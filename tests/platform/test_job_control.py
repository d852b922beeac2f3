"""Controlling evaluation and difficulty jobs without a worker: cancel for every role and in every state (API and
the job's page), the audit entries of starting and cancelling, the launcher and cluster as field errors, and beat
re-sending, then failing, a job whose message no worker took. Jobs cancelled on a real worker and on Slurm are
tests/workers/test_eval_jobs.py and tests/workers/test_slurm_eval_jobs.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from experiments.models import AuditEntry, DifficultyJob, EvaluationJob, JobStatus, SlurmCluster
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)
from tests.platform.api_cast import check


def queued_job(cast, role: str, **fields) -> EvaluationJob:
    return EvaluationJob.objects.create(team=cast.alpha, created_by=cast.users[role], model_path="/m", k=1,
                                        samples=1, temperature=1.0, **fields)


def test_cancel_follows_the_roles_of_runs(cast, api, tmp_path):
    mine, owners = queued_job(cast, "member"), queued_job(cast, "owner")
    difficulty = DifficultyJob.objects.create(team=cast.alpha, created_by=cast.users["member"], source=cast.source,
                                              model_path="/m", model_name="m", n=4)
    own = {"owner": 200, "admin": 200, "member": 200, "viewer": 403, "outsider": 404}
    cases = [
        ("cancel a member's evaluation", "post", lambda c: f"/api/v1/evaluation-jobs/{mine.pk}/cancel/", None, own),
        ("cancel the owner's evaluation", "post", lambda c: f"/api/v1/evaluation-jobs/{owners.pk}/cancel/", None,
         {**own, "member": 403}),
        ("cancel a member's estimate", "post", lambda c: f"/api/v1/difficulty-jobs/{difficulty.pk}/cancel/", None,
         own),
    ]
    assert check(cast, api, cases) == []


def test_a_queued_job_is_cancelled_at_once_a_running_one_asks_its_worker_and_an_ended_one_is_409(cast, api):
    client = api(cast.users["member"])
    queued = queued_job(cast, "member")
    body = client.post(f"/api/v1/evaluation-jobs/{queued.pk}/cancel/").json()
    assert (body["status"], body["status_reason"]) == ("cancelled", "cancelled by mo before it started")
    assert body["finished_at"]

    running = queued_job(cast, "member", status=JobStatus.RUNNING, task_id="message-1")
    body = client.post(f"/api/v1/evaluation-jobs/{running.pk}/cancel/").json()
    assert (body["status"], body["status_reason"]) == ("cancelling", "cancel requested by mo")
    assert body["finished_at"] is None  # a local worker watches the row and stops the job's processes

    for job, why in ((running, "it is already being cancelled (cancelling)"), (queued, "it has ended (cancelled)")):
        response = client.post(f"/api/v1/evaluation-jobs/{job.pk}/cancel/")
        assert response.status_code == 409
        assert response.json()["detail"] == f"evaluation job {job.pk} cannot be cancelled: {why}"
    assert AuditEntry.objects.filter(action="cancel", target_type="evaluation job").count() == 2


def test_starting_and_cancelling_are_in_the_audit_log_and_the_page_has_a_cancel_button(cast, api, client):
    made = api(cast.users["member"]).post("/api/v1/evaluation-jobs/", {
        "checkpoint": cast.checkpoint.pk, "eval_sets": [cast.source.pk], "k": 2}, format="json")
    job = EvaluationJob.objects.get(pk=made.json()["id"])
    assert made.json()["launcher"] == "local" and made.json()["cluster"] is None

    client.force_login(cast.users["viewer"])
    assert "Cancel job" not in client.get(f"/evaluations/{job.pk}/").content.decode()
    assert client.post(f"/evaluations/{job.pk}/cancel/").status_code == 403
    client.force_login(cast.users["outsider"])
    assert client.post(f"/evaluations/{job.pk}/cancel/").status_code == 404
    client.force_login(cast.users["member"])
    assert 'id="job-cancel"' in client.get(f"/evaluations/{job.pk}/").content.decode()
    response = client.post(f"/evaluations/{job.pk}/cancel/", follow=True)
    assert response.redirect_chain == [(f"/evaluations/{job.pk}/", 302)]
    page = response.content.decode()
    assert f"Cancelled evaluation job {job.pk}." in page and "cancelled by mo before it started" in page
    assert 'id="job-cancel"' not in page

    entries = AuditEntry.objects.filter(target_type="evaluation job", target_id=job.pk).order_by("at", "id")
    assert [(e.action, e.actor, e.target_label, e.detail) for e in entries] == [
        ("launch", cast.users["member"], str(job), {"launcher": "local"}),
        ("cancel", cast.users["member"], str(job), {}),
    ]
    client.force_login(cast.users["admin"])
    audit = client.get(f"/teams/{cast.alpha.pk}/audit/").content.decode()
    assert str(job) in audit


def test_the_launcher_and_cluster_are_field_errors(cast, api, client):
    cluster = SlurmCluster.objects.create(team=cast.alpha, name="hpc", rest_url="http://slurm:6820", user="or1",
                                          runs_dir="/shared/runs")
    theirs = SlurmCluster.objects.create(team=cast.beta, name="theirs", rest_url="http://slurm:6820", user="or1",
                                         runs_dir="/shared/runs")
    base = {"checkpoint": cast.checkpoint.pk, "eval_sets": [cast.source.pk], "k": 2}
    cases = [
        ({**base, "launcher": "slurm"}, "cluster", "is required for the Slurm launcher: choose one of hpc"),
        ({**base, "cluster": cluster.pk}, "cluster", "only for the Slurm launcher"),
        ({**base, "gpus": 1}, "gpus", "only for the Slurm launcher: a local job uses its worker's GPUs"),
        ({**base, "launcher": "slurm", "cluster": theirs.pk}, "cluster",
         f'Invalid pk "{theirs.pk}" - object does not exist.'),
        ({**base, "launcher": "ssh"}, "launcher", '"ssh" is not a valid choice.'),
    ]
    client_api = api(cast.users["member"])
    for body, path, message in cases:
        response = client_api.post("/api/v1/evaluation-jobs/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert {"path": path, "message": message} in response.json()["errors"], (body, response.json())
    made = client_api.post("/api/v1/evaluation-jobs/", {**base, "launcher": "slurm", "cluster": cluster.pk},
                           format="json").json()
    # the run rolls out with vLLM, tensor-parallel size 1: one GPU by default
    assert (made["launcher"], made["cluster"], made["gpus"], made["status"]) == ("slurm", cluster.pk, 1, "queued")

    client.force_login(cast.users["member"])
    response = client.post(f"/datasets/{cast.source.pk}/", {"checkpoint": cast.checkpoint.pk, "n": 4,
                                                             "temperature": 1.0, "launcher": "slurm"})
    errors = response.content.decode().split('id="errors-cluster"')[1].split("</ul>")[0]
    assert "is required for the Slurm launcher: choose one of hpc" in errors


@pytest.fixture
def launch_queue(settings):
    """A queue of the test's own for the local jobs' messages, read back with ``sent``; deleted afterwards."""
    from or1platform.celery import app

    settings.OR1_LOCAL_LAUNCH_QUEUE = queue = f"test.jobs.{uuid.uuid4().hex[:10]}"
    yield queue
    with app.connection_for_write() as conn, conn.SimpleQueue(queue) as q:
        q.clear()
        q.queue.delete()


def sent(queue: str) -> list[tuple[str, list]]:
    """The (task, args) of every message waiting in ``queue``, taken off it."""
    from or1platform.celery import app

    messages = []
    with app.connection_for_read() as conn, conn.SimpleQueue(queue) as q:
        while True:
            try:
                message = q.get(block=True, timeout=0.5)
            except q.Empty:
                return messages
            messages.append((message.headers["task"], message.payload[0]))
            message.ack()


def test_beat_sends_a_lost_job_again_then_fails_it_saying_why(cast, settings, launch_queue):
    from workers.tasks import reconcile

    settings.OR1_JOB_QUEUE_TIMEOUT_S = 60
    lost, fresh = queued_job(cast, "member"), queued_job(cast, "member")  # their messages never reached a worker
    EvaluationJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    reconcile()  # beat's round, as the worker on beat's queue runs it
    assert sent(launch_queue) == [("workers.eval_jobs.evaluate", [lost.pk])]
    lost.refresh_from_db()
    assert lost.status == JobStatus.QUEUED and lost.resent_at is not None
    assert lost.status_reason == f"no worker had taken it after 60s: its message was sent again to queue {launch_queue}"
    reconcile()
    assert sent(launch_queue) == []  # once only

    EvaluationJob.objects.filter(pk=lost.pk).update(resent_at=timezone.now() - timedelta(seconds=61))
    reconcile()
    lost.refresh_from_db()
    assert lost.status == JobStatus.FAILED and lost.finished_at is not None
    assert lost.status_reason == (f"no worker took it within 120s, though its message was sent twice to queue "
                                  f"{launch_queue}: check that a worker consumes that queue, then start the job again")
    fresh.refresh_from_db()
    assert (fresh.status, fresh.resent_at) == (JobStatus.QUEUED, None)
