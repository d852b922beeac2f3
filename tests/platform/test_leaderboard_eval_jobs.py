"""Evaluation and difficulty jobs without a worker: the specs they freeze, the API for every role, field errors in
the API and the browser, and what lands on the leaderboard. The jobs running on a real worker are
tests/workers/test_eval_jobs.py.

Requests run inside pytest-django's never-committed transaction, so no job reaches a broker.
"""

from __future__ import annotations

import json

from experiments.jobs import eval_spec
from experiments.models import DatasetSource, DifficultyJob, EvaluationJob, EvaluationResult, JobStatus
from or1_train.spec import RunSpec
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)
from tests.platform.api_cast import check


def test_eval_spec_points_the_run_spec_at_the_sources_and_stays_valid(cast):
    spec = eval_spec(cast.own_run.spec_as_launched, [cast.source], k=4, temperature=0.6, samples=8,
                     max_response_tokens=32)
    parsed = RunSpec.model_validate(spec)
    assert [(s.name, s.path) for s in parsed.evaluation.sets] == [(cast.source.name, cast.source.path)]
    evaluation = parsed.evaluation
    assert (evaluation.k, evaluation.samples, evaluation.temperature, evaluation.max_response_tokens) == (4, 8, 0.6, 32)
    assert spec is not cast.own_run.spec_as_launched


def model_dir(tmp_path, window: int = 512):
    directory = tmp_path / "hf-model"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"max_position_embeddings": window, "dtype": "float32"}))
    return str(directory)


def test_a_checkpoint_job_freezes_its_runs_spec_and_a_model_path_job_a_spec_of_the_model(cast, api, tmp_path):
    client = api(cast.users["member"])
    made = client.post("/api/v1/evaluation-jobs/", {"checkpoint": cast.checkpoint.pk, "eval_sets": [cast.source.pk],
                                                    "k": 2, "samples": 4, "temperature": 0.6}, format="json")
    assert made.status_code == 201, made.content
    job = EvaluationJob.objects.get(pk=made.json()["id"])
    assert (job.team, job.checkpoint, job.model_path) == (cast.alpha, cast.checkpoint, f"{cast.checkpoint.path}/model")
    assert job.spec["model"]["path"] == job.model_path and job.spec["model"]["bootstrap"] is None
    assert job.spec["stages"] == cast.own_run.spec_as_launched["stages"]  # the lengths the run trained with
    assert (job.spec["evaluation"]["k"], job.spec["evaluation"]["samples"], made.json()["samples"]) == (2, 4, 4)

    path = model_dir(tmp_path)
    made = client.post("/api/v1/evaluation-jobs/", {"model_path": path, "team": cast.alpha.pk, "k": 2,
                                                    "eval_sets": [cast.source.pk], "max_response_tokens": 64,
                                                    "engine": "hf"}, format="json")
    assert made.status_code == 201, made.content
    spec = EvaluationJob.objects.get(pk=made.json()["id"]).spec
    assert spec["model"] == {**spec["model"], "path": path, "dtype": "float32", "max_positions": 512}
    assert (spec["stages"][0]["max_prompt_tokens"], spec["rollout"]["engine"]) == (256, "hf")  # half the window
    assert made.json()["checkpoint"] is None and made.json()["samples"] == 2


def test_bad_jobs_are_field_errors_in_the_api(cast, api, tmp_path):
    client = api(cast.users["member"])
    beta_source = DatasetSource.objects.create(team=cast.beta, name="theirs", path="/data/x.jsonl")
    lcb = DatasetSource.objects.create(team=cast.alpha, name="lcb", path="/data/lcb", format="livecodebench")
    base = {"checkpoint": cast.checkpoint.pk, "eval_sets": [cast.source.pk], "k": 4}
    cases = [
        ({**base, "samples": 2}, "samples", "must be >= evaluation.k (4): pass@k needs at least k answers"),
        ({**base, "eval_sets": []}, "eval_sets", "choose at least one eval set"),
        ({**base, "checkpoint": None}, "model_path", "give a checkpoint or a model path (an HF model directory)"),
        ({**base, "model_path": "/models/x"}, "model_path", "give a checkpoint or a model path, not both"),
        ({**base, "team": cast.beta.pk}, "team", f'Invalid pk "{cast.beta.pk}" - object does not exist.'),
        ({**base, "eval_sets": [beta_source.pk]}, "eval_sets",
         f'Invalid pk "{beta_source.pk}" - object does not exist.'),
        ({"model_path": model_dir(tmp_path), "team": cast.alpha.pk, "eval_sets": [cast.source.pk], "k": 4,
          "max_response_tokens": 1000}, "max_response_tokens",
         "max_prompt_tokens + max_response_tokens = 1256 exceeds the model's max positions (512)"),
    ]
    for body, path, message in cases:
        response = client.post("/api/v1/evaluation-jobs/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert {"path": path, "message": message} in response.json()["errors"], (body, response.json())
    response = client.post("/api/v1/difficulty-jobs/", {"source": lcb.pk, "checkpoint": cast.checkpoint.pk},
                           format="json")
    assert response.json()["errors"][0]["path"] == "source" and "cannot be estimated" in response.json()["detail"]
    assert not EvaluationJob.objects.exists() and not DifficultyJob.objects.exists()


def finished_difficulty_job(cast, tmp_path) -> DifficultyJob:
    filtered = tmp_path / "filtered.jsonl"
    filtered.write_text(json.dumps({"prompt": "1+1?", "ground_truth": "2"}) + "\n")
    return DifficultyJob.objects.create(
        team=cast.alpha, created_by=cast.users["member"], source=cast.source, checkpoint=cast.checkpoint,
        model_path="/m", model_name="tiny", n=4, status=JobStatus.SUCCEEDED, histogram={"0": 2, "1": 1, "4": 0},
        num_problems=3, kept=1, filtered_path=str(filtered),
    )


def test_jobs_for_every_role(cast, api, tmp_path):
    evaluation = EvaluationJob.objects.create(team=cast.alpha, model_path="/m", k=2, samples=2, temperature=1.0)
    difficulty = finished_difficulty_job(cast, tmp_path)
    ok = {"owner": 200, "admin": 200, "member": 200, "viewer": 200, "outsider": 404}
    created = {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}
    cases = [
        ("evaluation job", "get", lambda c: f"/api/v1/evaluation-jobs/{evaluation.pk}/", None, ok),
        ("difficulty job", "get", lambda c: f"/api/v1/difficulty-jobs/{difficulty.pk}/", None, ok),
        ("evaluate", "post", lambda c: "/api/v1/evaluation-jobs/",
         lambda c: {"checkpoint": c.checkpoint.pk, "eval_sets": [c.source.pk], "k": 2}, created),
        ("estimate", "post", lambda c: "/api/v1/difficulty-jobs/",
         lambda c: {"source": c.source.pk, "checkpoint": c.checkpoint.pk, "n": 4}, created),
        ("create source", "post", lambda c: f"/api/v1/difficulty-jobs/{difficulty.pk}/create-source/",
         lambda c: {"name": "easy-kept"}, {**created, "outsider": 404}),
    ]
    assert check(cast, api, cases) == []
    listed = {role: api(cast.users[role]).get("/api/v1/evaluation-jobs/").json()["count"] for role in ("viewer",
                                                                                                         "outsider")}
    assert listed == {"viewer": 1, "outsider": 0}


def test_create_source_registers_the_kept_problems_once(cast, api, tmp_path):
    job = finished_difficulty_job(cast, tmp_path)
    client = api(cast.users["member"])
    made = client.post(f"/api/v1/difficulty-jobs/{job.pk}/create-source/", {}, format="json")
    assert made.status_code == 201, made.content
    source = DatasetSource.objects.get(pk=made.json()["id"])
    assert (source.name, source.team, source.path, source.num_prompts) == (
        "easy-solved-1-3-of-4", cast.alpha, job.filtered_path, 1)
    again = client.post(f"/api/v1/difficulty-jobs/{job.pk}/create-source/", {}, format="json")
    assert again.json()["errors"] == [{"path": "job", "message": "already registered as easy-solved-1-3-of-4"}]
    running = DifficultyJob.objects.create(team=cast.alpha, source=cast.source, model_path="/m", model_name="m", n=4,
                                           status=JobStatus.RUNNING)
    refused = client.post(f"/api/v1/difficulty-jobs/{running.pk}/create-source/", {}, format="json")
    assert refused.json()["errors"] == [{"path": "job", "message": "the job is running, not finished"}]


def test_the_browser_forms_name_the_field_and_keep_viewers_and_outsiders_out(cast, client):
    client.force_login(cast.users["member"])
    page = client.get(f"/evaluations/new/?checkpoint={cast.checkpoint.pk}").content.decode()
    assert f'<option value="{cast.checkpoint.pk}" selected>' in page and "easy (Alpha" in page
    response = client.post("/evaluations/new/", {"checkpoint": cast.checkpoint.pk, "eval_sets": [cast.source.pk],
                                                 "k": 4, "samples": 2, "temperature": 1.0})
    assert response.status_code == 200
    errors = response.content.decode().split('id="errors-samples"')[1].split("</ul>")[0]
    assert "must be &gt;= evaluation.k (4)" in errors
    response = client.post("/evaluations/new/", {"eval_sets": [cast.source.pk], "k": 4, "temperature": 1.0})
    assert 'id="errors-model_path"' in response.content.decode()
    response = client.post(f"/datasets/{cast.source.pk}/", {"n": 4, "temperature": 1.0})
    assert "give a checkpoint or a model path" in response.content.decode().split('id="errors-model_path"')[1]
    response = client.post("/evaluations/new/", {"checkpoint": cast.checkpoint.pk, "eval_sets": [cast.source.pk],
                                                 "k": 2, "temperature": 1.0})
    job = EvaluationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evaluations/{job.pk}/"
    assert "Queued" in client.get(response["Location"]).content.decode()
    polled = client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert 'id="job-status"' in polled.content.decode() and "HX-Refresh" not in polled

    client.force_login(cast.users["viewer"])
    assert client.get(f"/evaluations/new/?checkpoint={cast.checkpoint.pk}").status_code == 403
    assert client.post(f"/datasets/{cast.source.pk}/", {"n": 4}).status_code == 403
    assert "Estimate difficulty" not in client.get(f"/datasets/{cast.source.pk}/").content.decode()
    client.force_login(cast.users["outsider"])
    for url in (f"/evaluations/{job.pk}/", f"/datasets/{cast.source.pk}/",
                f"/evaluations/new/?checkpoint={cast.checkpoint.pk}"):
        assert client.get(url).status_code == 404, url


def test_a_finished_difficulty_job_shows_its_histogram_and_creates_the_source_in_one_click(cast, client, tmp_path):
    job = finished_difficulty_job(cast, tmp_path)
    client.force_login(cast.users["member"])
    polled = client.get(f"/datasets/difficulty/{job.pk}/", HTTP_HX_REQUEST="true")
    assert polled["HX-Refresh"] == "true"  # the poll that sees the end reloads the page once
    page = client.get(f"/datasets/difficulty/{job.pk}/").content.decode()
    assert 'id="difficulty-histogram"' in page and "vendor/plotly.min.js" in page and "cdn" not in page.lower()
    assert '"counts": [0, 1, 4], "problems": [2, 1, 0], "n": 4' in page
    response = client.post(f"/datasets/difficulty/{job.pk}/create-source/", {"name": "easy-kept"})
    source = DatasetSource.objects.get(name="easy-kept")
    assert response["Location"] == f"/datasets/{source.pk}/" and source.num_prompts == 1
    assert "Registered as" in client.get(f"/datasets/difficulty/{job.pk}/").content.decode()


def test_a_model_path_result_is_on_the_leaderboard_with_k_and_samples(cast, client):
    job = EvaluationJob.objects.create(team=cast.alpha, model_path="/models/R1-Distill-7B", k=4, samples=8,
                                       temperature=0.6, status=JobStatus.SUCCEEDED)
    EvaluationResult.objects.create(job=job, model_path=job.model_path, benchmark="aime24", k=4, num_samples=240,
                                    avg_at_k=0.5, pass_at_k=0.7, temperature=0.6)
    client.force_login(cast.users["viewer"])
    page = client.get("/leaderboard/?benchmark=aime24").content.decode()
    row = page.split('id="leaderboard"')[1].split("</table>")[0]
    assert "/models/R1-Distill-7B" in row and f"job #{job.pk}" in row and "<td>4</td><td>240</td>" in row
    assert f'href="/evaluations/{job.pk}/"' in page.split('id="evaluation-jobs"')[1]
    client.force_login(cast.users["outsider"])
    assert "/models/R1-Distill-7B" not in client.get("/leaderboard/?benchmark=aime24").content.decode()
    assert api_results(cast, "outsider") == 0
    assert api_results(cast, "viewer") == 2  # the cast's evaluation and this one


def api_results(cast, role: str) -> int:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(cast.users[role])
    return client.get("/api/v1/evaluations/").json()["count"]
