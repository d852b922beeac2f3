"""Evaluation and difficulty jobs on the real single-node Slurm of deploy/services/slurm_up.sh, started from the
API and the browser: the Slurm worker's tasks taken off the broker and run here (``deliver``), the jobs followed by
the reconciler as beat calls it, `or1-train eval` / `estimate-difficulty` run as the cluster's job user on the
tiny model, and their outputs read from the shared filesystem into the database. tests/workers/slurm_cast.py
says what the cluster needs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from experiments.models import AuditEntry, DatasetSource, DifficultyJob, EvaluationJob, JobStatus
from tests.workers.slurm_cast import *  # noqa: F403 (the cluster's fixtures)
from tests.workers.slurm_cast import deliver
from workers import slurm_eval_jobs
from workers.processes import processes_of

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _follow(jobs: list, timeout_s: float, what: str) -> None:
    """Reconcile (as beat does) until every job has ended; on a timeout, show their logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        slurm_eval_jobs.reconcile()
        for job in jobs:
            job.refresh_from_db()
        if all(job.is_terminal for job in jobs):
            return
        time.sleep(0.5)
    for job in jobs:
        log = Path(job.work_dir or "/nonexistent") / "job.log"
        print(job.label, job.status, job.status_reason, log.read_text()[-3000:] if log.exists() else "(no job.log)")
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture
def evalset(inputs, team):
    return DatasetSource.objects.create(team=team, name="arith-eval", path=str(inputs["eval"]))


def test_jobs_on_slurm_run_as_the_job_user_and_land_on_the_leaderboard(
    slurm_queue, make_cluster, inputs, evalset, team, alice, client, shared_dir
):
    cluster = make_cluster()
    api = APIClient()
    api.force_authenticate(alice)
    model = str(inputs["model"])
    on_slurm = {"model_path": model, "engine": "hf", "launcher": "slurm", "cluster": cluster.pk}
    made = [
        api.post("/api/v1/evaluation-jobs/", {**on_slurm, "team": team.pk, "eval_sets": [evalset.pk], "k": 2,
                                              "samples": 2, "max_response_tokens": 8}, format="json"),
        api.post("/api/v1/difficulty-jobs/", {**on_slurm, "source": evalset.pk, "n": 2, "max_tokens": 8,
                                              "model_name": "tiny"}, format="json"),
    ]
    assert [m.status_code for m in made] == [201, 201], [m.content for m in made]
    evaluation = EvaluationJob.objects.get(pk=made[0].json()["id"])
    difficulty = DifficultyJob.objects.get(pk=made[1].json()["id"])
    submitted = deliver(slurm_queue)
    evaluation.refresh_from_db()
    difficulty.refresh_from_db()
    assert sorted(submitted) == sorted(f"submitted Slurm job {j.slurm_job_id}" for j in (evaluation, difficulty))
    _follow([evaluation, difficulty], 180, "both jobs to end")

    assert [evaluation.status, difficulty.status] == [JobStatus.SUCCEEDED] * 2, [evaluation.status_reason,
                                                                                difficulty.status_reason]
    (result,) = evaluation.results.all()
    assert (result.benchmark, result.k, result.num_samples, result.model_path, result.run) == (
        "arith-eval", 2, 8 * 2, model, None)
    work = Path(evaluation.work_dir)
    assert work == shared_dir["runs"] / "evals" / f"eval-{evaluation.pk}"
    assert (work / "results.json").stat().st_uid == shared_dir["uid"]  # written by the job user, on the cluster
    assert f"or1: Slurm job {evaluation.slurm_job_id} on " in (work / "job.log").read_text()
    assert (evaluation.slurm_state, evaluation.gpus) == ("COMPLETED", 0)  # transformers: no GPU asked for
    assert sum(difficulty.histogram.values()) == difficulty.num_problems == 8
    assert Path(difficulty.filtered_path).parent == shared_dir["runs"] / "evals" / f"difficulty-{difficulty.pk}"

    client.force_login(alice)
    board = client.get("/leaderboard/?benchmark=arith-eval").content.decode().split('id="leaderboard"')[1]
    assert model in board and f"job #{evaluation.pk}" in board and "<td>2</td><td>16</td>" in board
    page = client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert f"job <code>{evaluation.slurm_job_id}</code> COMPLETED" in page
    launched = AuditEntry.objects.get(action="launch", target_type="evaluation job", target_id=evaluation.pk)
    assert launched.detail == {"launcher": "slurm", "cluster": "local"}


def test_a_job_slurm_refuses_fails_with_its_reason_and_a_cancel_cancels_the_slurm_job(
    slurm_queue, make_cluster, inputs, evalset, team, alice, client
):
    broken, cluster = make_cluster("broken", partition="no-such-partition"), make_cluster()
    form = {"model_path": str(inputs["model"]), "team": team.pk, "eval_sets": [evalset.pk], "k": 1,
            "temperature": 1.0, "max_response_tokens": 8, "engine": "hf", "launcher": "slurm"}
    client.force_login(alice)
    assert client.post("/evaluations/new/", {**form, "cluster": broken.pk}).status_code == 302
    refused = EvaluationJob.objects.get(cluster=broken)
    assert deliver(slurm_queue) == ["failed"]
    refused.refresh_from_db()
    assert refused.status == JobStatus.FAILED and refused.slurm_job_id is None
    assert refused.status_reason.startswith("Slurm cluster broken refused the job: submit rejected by Slurm: ")
    assert "Invalid partition name specified (error 2000)" in refused.status_reason
    assert "Invalid partition name specified (error 2000)" in client.get(f"/evaluations/{refused.pk}/").content.decode()

    assert client.post("/evaluations/new/", {**form, "cluster": cluster.pk}).status_code == 302
    job = EvaluationJob.objects.get(cluster=cluster)
    [submitted] = deliver(slurm_queue)
    job.refresh_from_db()
    assert submitted == f"submitted Slurm job {job.slurm_job_id}" and job.status == JobStatus.RUNNING
    assert client.post(f"/evaluations/{job.pk}/cancel/").status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLING
    assert deliver(slurm_queue) == ["cancelled in Slurm"]
    _follow([job], 60, "the cancelled Slurm job to end")

    assert job.status == JobStatus.CANCELLED, job.status_reason
    assert job.status_reason.startswith(f"cancel requested by alice (Slurm job {job.slurm_job_id} CANCELLED")
    with cluster.client() as slurm:
        assert slurm.job(job.slurm_job_id).state == "CANCELLED"
    assert not job.results.exists()
    deadline = time.monotonic() + 10
    while processes_of(job.work_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(job.work_dir) == []
    assert AuditEntry.objects.filter(action="cancel", target_type="evaluation job", target_id=job.pk).exists()
