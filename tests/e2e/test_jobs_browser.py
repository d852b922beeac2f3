"""Evaluation and difficulty jobs in Chromium, as a new user meets them: upload an eval set, press Evaluate on
a checkpoint's page, land on the job's page and cancel it there; a finished difficulty job's histogram drawn by
plotly, and the filtered set registered in one click. The jobs themselves run in tests/workers/test_eval_jobs.py."""

from __future__ import annotations

import json

from django.urls import reverse

from experiments.models import Checkpoint, DatasetSource, DifficultyJob, EvaluationJob, JobStatus
from tests.e2e import test_dashboards_browser as shared

# the Chromium and logged-in page fixtures, and the browser marks, of the dashboard tests
ARTIFACTS, pytestmark, browser, page = shared.ARTIFACTS, shared.pytestmark, shared.browser, shared.page


def test_upload_an_eval_set_then_evaluate_a_checkpoint(page, live_server, run, settings, tmp_path):
    settings.OR1_DATASETS_DIR = tmp_path / "datasets"
    checkpoint = Checkpoint.objects.create(run=run, step=5, stage=1, path=str(tmp_path / "step-000005"))
    upload = tmp_path / "mini.jsonl"
    upload.write_text("".join(json.dumps({"prompt": f"{i}+1?", "ground_truth": str(i + 1)}) + "\n" for i in range(3)))
    page.goto(live_server.url + reverse("dataset-upload"))
    page.select_option("#id_team", label="Alpha")
    page.fill("#id_name", "mini")
    page.set_input_files("#id_file", str(upload))
    page.click("#dataset-upload button[type=submit]")
    page.wait_for_selector("text=Registered mini (3 problems)")

    page.goto(live_server.url + reverse("checkpoint-detail", args=[checkpoint.pk]))
    page.click("#evaluate")
    assert page.locator("#id_checkpoint").input_value() == str(checkpoint.pk)
    page.check("text=mini (Alpha")
    page.fill("#id_k", "4")
    page.fill("#id_samples", "2")
    page.click("#evaluation-form button[type=submit]")
    assert "must be >= evaluation.k (4)" in page.locator("#errors-samples").inner_text()
    page.screenshot(path=str(ARTIFACTS / "evaluation-form.png"), full_page=True)
    page.fill("#id_samples", "8")
    page.click("#evaluation-form button[type=submit]")
    job = EvaluationJob.objects.get()
    page.wait_for_url(live_server.url + reverse("evaluation-job", args=[job.pk]))
    assert page.locator("#job-status .badge").inner_text() == "Queued" and job.samples == 8
    page.screenshot(path=str(ARTIFACTS / "evaluation-job.png"), full_page=True)
    page.click("#job-cancel button")  # changed their mind: no worker has taken it yet, so it ends at once
    page.wait_for_selector(f"text=Cancelled evaluation job {job.pk}.")
    assert page.locator("#job-status .badge").inner_text() == "Cancelled" and page.locator("#job-cancel").count() == 0


def test_a_difficulty_histogram_and_create_filtered_source(page, live_server, team, tmp_path):
    source = DatasetSource.objects.create(team=team, name="digits", path="/data/digits.jsonl", format="jsonl")
    filtered = tmp_path / "filtered.jsonl"
    filtered.write_text(json.dumps({"prompt": "2?", "ground_truth": "2"}) + "\n")
    job = DifficultyJob.objects.create(
        team=team, source=source, model_path="/m/tiny", model_name="tiny", n=4, status=JobStatus.SUCCEEDED,
        histogram={"0": 5, "1": 2, "2": 1, "3": 0, "4": 1}, num_problems=9, kept=3, filtered_path=str(filtered),
    )
    page.goto(live_server.url + reverse("difficulty-job", args=[job.pk]))
    page.wait_for_selector("#difficulty-histogram .bars path")
    assert page.locator("#difficulty-histogram .bars path").count() == 5  # one bar per pass count 0..4
    page.locator("#difficulty-histogram").screenshot(path=str(ARTIFACTS / "difficulty-histogram.png"))
    page.click("#create-source button[type=submit]")
    page.wait_for_selector("text=Registered digits-solved-1-3-of-4 (3 problems)")
    assert DatasetSource.objects.get(name="digits-solved-1-3-of-4").path == str(filtered)
