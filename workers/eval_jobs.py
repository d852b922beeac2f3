"""Evaluation and difficulty jobs on a worker: `or1-train eval` / `or1-train estimate-difficulty` on the job's
frozen spec, and what they return stored in the job's rows.

Each job runs as a subprocess of the Celery worker, like a training run under the local launcher: the
trainer's libraries (torch, vLLM) never load into the worker, a crash is the child's exit code, and the child
gets the trainer's scrubbed environment without an ingestion token (the results come back through a file,
not the metrics endpoint). The task holds its message while the child runs (``acks_late``; the broker's
visibility timeout is above ``OR1_LONGEST_TASK_S``), so a lost worker's job is redelivered and runs again,
while a finished job's row refuses a second run (``ModelJob.claim``).

Where the files go: an evaluation's spec, log and ``results.json`` under ``<OR1_RUNS_DIR>/evals/eval-<id>``;
a difficulty job's under ``<OR1_DATASETS_DIR>/<team id>/difficulty-<id>``, because its ``filtered.jsonl``
becomes a dataset source of the team.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from celery import shared_task
from django.conf import settings

from experiments.models import DifficultyJob, EvaluationJob, EvaluationResult, JobStatus
from workers.launchers.local import PLATFORM_SECRETS

JOB_TIMEOUT_S = 6 * 3600
SPEC_FILE, LOG_FILE = "spec.yaml", "job.log"


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in PLATFORM_SECRETS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env | {"PYTHONUNBUFFERED": "1"}


def _failure(work: Path, returncode: int) -> str:
    """The CLI's own one-line error (``error: ...``) from the job's log, else its last line."""
    lines = (work / LOG_FILE).read_text(errors="replace").strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    last = errors[-1] if errors else (lines[-1] if lines else "no output")
    return f"or1-train exited {returncode}: {last}"


def _run_cli(job, work: Path, args: list[str]) -> bool:
    """Run `python -m or1_train <args>` for ``job``; False (and the job failed, with the reason) if it fails."""
    (work / SPEC_FILE).write_text(yaml.safe_dump(job.spec, sort_keys=False))
    command = [sys.executable, "-m", "or1_train", *args]
    try:
        with open(work / LOG_FILE, "wb") as log:
            done = subprocess.run(command, cwd=settings.BASE_DIR, env=_environment(), stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=JOB_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        job.finish(JobStatus.FAILED, f"stopped after {JOB_TIMEOUT_S // 3600} hours")
        return False
    if done.returncode != 0:
        job.finish(JobStatus.FAILED, _failure(work, done.returncode))
        return False
    return True


def run_evaluation(job_id: int) -> list[int]:
    """Evaluate the job's model on its eval sets; returns the new EvaluationResult ids (none if it failed)."""
    job = EvaluationJob.objects.select_related("checkpoint").get(pk=job_id)
    work = Path(settings.OR1_RUNS_DIR) / "evals" / f"eval-{job.pk}"
    if not job.claim(str(work)):
        return []
    work.mkdir(parents=True, exist_ok=True)
    out = work / "results.json"
    if not _run_cli(job, work, ["eval", str(work / SPEC_FILE), "--out", str(out)]):
        return []
    checkpoint = job.checkpoint
    rows = [
        EvaluationResult(
            job=job, run_id=checkpoint.run_id if checkpoint else None, checkpoint=checkpoint,
            model_path=job.model_path, benchmark=r["name"], k=r["k"], num_samples=r["num_samples"],
            avg_at_k=r["avg_at_k"], pass_at_k=r["pass_at_k"], temperature=job.temperature,
            step=checkpoint.step if checkpoint else None,
        )
        for r in json.loads(out.read_text())
    ]
    EvaluationResult.objects.filter(job=job).delete()  # a redelivered job's earlier attempt
    ids = [row.pk for row in EvaluationResult.objects.bulk_create(rows)]
    job.finish(JobStatus.SUCCEEDED, "; ".join(f"{r.benchmark}: avg@{r.k} {r.avg_at_k:.3f}" for r in rows))
    return ids


def run_difficulty(job_id: int) -> dict:
    """Estimate the pass counts of the job's source; returns the report (empty if the job failed)."""
    job = DifficultyJob.objects.select_related("source").get(pk=job_id)
    work = Path(settings.OR1_DATASETS_DIR) / str(job.team_id) / f"difficulty-{job.pk}"
    if not job.claim(str(work)):
        return {}
    work.mkdir(parents=True, exist_ok=True)
    report_file = work / "report.json"
    args = ["estimate-difficulty", str(work / SPEC_FILE), "--data", job.source.path, "--format", job.source.format,
            "--n", str(job.n), "--out", str(work / "passes.jsonl"), "--filtered", str(work / "filtered.jsonl"),
            "--model-name", job.model_name, "--temperature", str(job.temperature), "--report", str(report_file)]
    if job.max_tokens:
        args += ["--max-tokens", str(job.max_tokens)]
    if job.limit:
        args += ["--limit", str(job.limit)]
    if not _run_cli(job, work, args):
        return {}
    report = json.loads(report_file.read_text())
    job.finish(
        JobStatus.SUCCEEDED, f"{report['kept']} of {report['num_problems']} problems solved 1..{job.n - 1} times",
        histogram=report["histogram"], num_problems=report["num_problems"], kept=report["kept"],
        out_path=report["out"], filtered_path=report["filtered"],
    )
    return report


def _failing_the_job(model, run, job_id: int):
    """``run(job_id)``; an error of the worker's own (unreadable output, a full disk) fails the job with the
    reason instead of leaving it running forever."""
    try:
        return run(job_id)
    except Exception as exc:
        model.objects.get(pk=job_id).finish(JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="workers.eval_jobs.evaluate")
def evaluate(job_id: int) -> list[int]:
    return _failing_the_job(EvaluationJob, run_evaluation, job_id)


@shared_task(name="workers.eval_jobs.difficulty")
def difficulty(job_id: int) -> dict:
    return _failing_the_job(DifficultyJob, run_difficulty, job_id)
