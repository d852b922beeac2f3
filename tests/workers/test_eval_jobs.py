"""Evaluation and difficulty jobs end to end: started from the browser and the API, run by a real Celery worker
(Redis, PostgreSQL) as `or1-train eval` / `or1-train estimate-difficulty` subprocesses on the fixtures' tiny
model, their results in the database, on the leaderboard, and the filtered dataset registered in one click.

All four jobs are queued at once and run two at a time on the module's worker, to keep the test short.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.actions import create_experiment_from_spec, create_run
from experiments.models import Checkpoint, DatasetSource, DifficultyJob, EvaluationJob, JobStatus, RunStatus
from or1_train.data.sources import read_source

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

#: problems whose answer is one digit: the random tiny model's text ends in the right one now and then, so some
#: problems are solved 1..n-1 times of n (about 2 of 20 at n = 8 and 32 tokens) and most never
DIGITS = [{"prompt": f"Say a number: {i}", "ground_truth": str(i % 10)} for i in range(20)]


@pytest.fixture
def finished_run(project, alice, worker_spec, worker_inputs, tmp_path):
    """A run that ended with one checkpoint: a copy of the tiny model, registered as the trainer does."""
    run = create_run(create_experiment_from_spec(project=project, user=alice, spec=worker_spec()), user=alice)
    for status in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.SUCCEEDED):  # beat must not launch it
        run.transition_to(status)
    directory = tmp_path / "checkpoints" / "step-000001"
    shutil.copytree(worker_inputs["model"], directory / "model")
    checkpoint = Checkpoint.objects.create(run=run, step=1, stage=0, path=str(directory))
    return run, checkpoint


def test_jobs_from_the_browser_and_the_api_run_on_the_worker(
    live_worker, finished_run, team, alice, worker_inputs, client, tmp_path, wait_for
):
    from rest_framework.test import APIClient

    run, checkpoint = finished_run
    evalset = DatasetSource.objects.create(team=team, name="arith-eval", path=str(worker_inputs["eval"]))
    digits_file = tmp_path / "digits.jsonl"
    digits_file.write_text("".join(json.dumps(row) + "\n" for row in DIGITS))
    digits = DatasetSource.objects.create(team=team, name="digits", path=str(digits_file), format="jsonl")
    client.force_login(alice)
    api = APIClient()
    api.force_authenticate(alice)

    response = client.post("/evaluations/new/", {"checkpoint": checkpoint.pk, "eval_sets": [evalset.pk], "k": 2,
                                                 "samples": 4, "temperature": 1.0, "max_response_tokens": 8})
    assert response.status_code == 302, response.content.decode()
    of_checkpoint = EvaluationJob.objects.get(checkpoint=checkpoint)
    response = client.post(f"/datasets/{digits.pk}/", {"model_path": str(worker_inputs["model"]), "n": 8,
                                                       "max_tokens": 32, "temperature": 1.0, "engine": "hf",
                                                       "model_name": "tiny"})
    assert response.status_code == 302, response.content.decode()
    estimate = DifficultyJob.objects.get(source=digits)
    made = [api.post("/api/v1/evaluation-jobs/", {"model_path": path, "team": team.pk, "eval_sets": [evalset.pk],
                                                  "k": 1, "max_response_tokens": 8, "engine": "hf"}, format="json")
            for path in (str(worker_inputs["model"]), str(tmp_path / "no-such-model"))]
    assert [m.status_code for m in made] == [201, 201], [m.content for m in made]
    of_path, missing = (EvaluationJob.objects.get(pk=m.json()["id"]) for m in made)

    jobs = [of_checkpoint, estimate, of_path, missing]

    def all_ended():
        for job in jobs:
            job.refresh_from_db()
        return all(job.is_terminal for job in jobs)

    try:
        wait_for(all_ended, 420, "the four jobs to end")
    except pytest.fail.Exception:
        print(live_worker.log_text()[-6000:])
        raise
    logs = {job.pk: (Path(job.work_dir) / "job.log").read_text()[-3000:] for job in jobs if job.work_dir}
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 3 + [JobStatus.FAILED], logs

    # a checkpoint: one row per set, on the run and the checkpoint, with k and the samples behind it
    (result,) = of_checkpoint.results.all()
    assert (result.run, result.checkpoint, result.step, result.benchmark) == (run, checkpoint, 1, "arith-eval")
    assert (result.k, result.num_samples, result.temperature) == (2, 8 * 4, 1.0)  # 8 problems x 4 samples
    assert 0.0 <= result.avg_at_k <= result.pass_at_k <= 1.0
    board = client.get("/leaderboard/?benchmark=arith-eval").content.decode().split('id="leaderboard"')[1]
    assert f"/runs/{run.pk}/" in board and "<td>2</td><td>32</td>" in board

    # a model path: the row names the model; the API shows the job with its results
    body = api.get(f"/api/v1/evaluation-jobs/{of_path.pk}/").json()
    assert body["status"] == "succeeded" and [(r["model_path"], r["k"], r["num_samples"], r["run"])
                                              for r in body["results"]] == [(str(worker_inputs["model"]), 1, 8, None)]
    assert "no-such-model" in missing.status_reason and missing.status_reason.startswith("or1-train exited 1: error:")
    assert "or1-train exited 1" in client.get(f"/evaluations/{missing.pk}/").content.decode()

    # difficulty: the histogram covers every problem, the filtered file what was solved 1..n-1 times
    assert sum(estimate.histogram.values()) == estimate.num_problems == len(DIGITS)
    assert estimate.kept == sum(v for c, v in estimate.histogram.items() if 1 <= int(c) <= 7) > 0
    page = client.get(f"/datasets/difficulty/{estimate.pk}/").content.decode()
    assert 'id="difficulty-histogram"' in page and "Create filtered source" in page
    response = client.post(f"/datasets/difficulty/{estimate.pk}/create-source/", {"name": "digits-kept"})
    source = DatasetSource.objects.get(team=team, name="digits-kept")
    assert response["Location"] == f"/datasets/{source.pk}/" and source.num_prompts == estimate.kept
    kept = read_source(source.path).examples
    assert len(kept) == estimate.kept and all(1 <= e.extra["pass_count"]["tiny"] <= 7 for e in kept)


def test_a_running_job_cancelled_from_the_api_stops_its_process_group(live_worker, team, alice, worker_inputs,
                                                                      wait_for):
    from rest_framework.test import APIClient

    from workers.processes import processes_of

    evalset = DatasetSource.objects.create(team=team, name="arith-eval", path=str(worker_inputs["eval"]))
    api = APIClient()
    api.force_authenticate(alice)
    made = api.post("/api/v1/evaluation-jobs/", {"model_path": str(worker_inputs["model"]), "team": team.pk,
                                                 "eval_sets": [evalset.pk], "k": 1, "samples": 1024,
                                                 "max_response_tokens": 64, "engine": "hf"}, format="json")
    job = EvaluationJob.objects.get(pk=made.json()["id"])  # hours of sampling: it only ends by the cancel

    def started():
        job.refresh_from_db()
        return job.status == JobStatus.RUNNING and processes_of(job.work_dir)

    children = wait_for(started, 60, "the job's or1-train process")
    body = api.post(f"/api/v1/evaluation-jobs/{job.pk}/cancel/").json()
    assert body["status"] == "cancelling"
    wait_for(lambda: job.refresh_from_db() or job.is_terminal, 30, "the worker to stop the job")

    assert job.status == JobStatus.CANCELLED, job.status_reason
    assert job.status_reason == "cancel requested by alice (its processes were stopped)" and job.task_id
    assert processes_of(job.work_dir) == [], f"left running: {children}"
    assert not job.results.exists()
