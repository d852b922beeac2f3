"""Evaluation and difficulty jobs on a local worker, and the Celery tasks of every job.

On the local launcher each job runs as a subprocess of the Celery worker, like a training run: the trainer's
libraries (torch, vLLM) never load into the worker, a crash is the child's exit code, and the child gets the
trainer's scrubbed environment without an ingestion token (the results come back through a file, not the
metrics endpoint). The child leads a process group of its own. The task holds its message while the child
runs (``acks_late``; the broker's visibility timeout is above ``OR1_LONGEST_TASK_S``), so a lost worker's job
is redelivered and runs again; the job row records the message's id (``ModelJob.claim``), so a second copy of
the message (beat re-sends one no worker took) finds the job taken and does nothing.

Cancel: the task looks at its job's row every ``POLL_S`` while the child runs; when the row is no longer
``running`` (a person cancelled it: ``cancelling``), the whole process group gets SIGTERM, SIGKILL after
``OR1_CANCEL_GRACE_S``, and the job ends ``cancelled``. So a cancel needs no message to the worker's host,
whose worker slot is busy with the job anyway.

Where the files go: an evaluation's spec, log and ``results.json`` under ``<OR1_RUNS_DIR>/evals/eval-<id>``;
a difficulty job's under ``<OR1_DATASETS_DIR>/<team id>/difficulty-<id>``, because its ``filtered.jsonl``
becomes a dataset source of the team. ``workers/model_jobs.py`` says what runs and what its outputs mean;
``workers/slurm_eval_jobs.py`` runs the same commands on a Slurm cluster.

Beat (``workers.tasks.reconcile``) also calls ``resend_or_fail_queued``: a job still ``queued`` after
``OR1_JOB_QUEUE_TIMEOUT_S`` (its message lost: a broker restart, a queue no worker consumes) gets its message
sent again once, and fails, saying so, if it is still queued as long again after that.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import yaml
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from experiments import jobs as job_actions
from experiments.models import DifficultyJob, EvaluationJob, EvaluationResult, JobStatus
from workers import model_jobs, slurm_eval_jobs
from workers.launchers.local import PLATFORM_SECRETS

log = logging.getLogger(__name__)

JOB_TIMEOUT_S = 6 * 3600
#: how often a running job's task looks for a cancel
POLL_S = 1.0


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in PLATFORM_SECRETS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env | {"PYTHONUNBUFFERED": "1"}


def local_dir(job) -> Path:
    if isinstance(job, EvaluationJob):
        return Path(settings.OR1_RUNS_DIR) / "evals" / model_jobs.dir_name(job)
    return Path(settings.OR1_DATASETS_DIR) / str(job.team_id) / model_jobs.dir_name(job)


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL what is left of it after the grace period."""
    for sig, wait_s in ((signal.SIGTERM, settings.OR1_CANCEL_GRACE_S), (signal.SIGKILL, 10)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:  # the leader is reaped and the group empty
            return
        try:
            child.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass


def _supervise(job, child: subprocess.Popen) -> int | None:
    """Wait for the child; its exit code, or None when it was stopped (the job then ended with the reason)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        try:
            return child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        status = type(job).objects.filter(pk=job.pk).values_list("status", "status_reason").first()
        if status is None or status[0] != JobStatus.RUNNING:
            _stop(child)
            requested = status[1] if status else "the job was deleted"
            job.finish(JobStatus.CANCELLED, f"{requested} (its processes were stopped)")
            return None
        if time.monotonic() > deadline:
            _stop(child)
            job.finish(JobStatus.FAILED, f"stopped after {JOB_TIMEOUT_S // 3600} hours")
            return None


def run_here(job, task_id: str) -> bool:
    """Run the job's command on this worker and store its outputs; False if it did not succeed here."""
    work = local_dir(job)
    if not job.claim(str(work), task_id):
        if job.status == JobStatus.CANCELLING and job.task_id == task_id:  # redelivered: its worker was lost
            job.finish(JobStatus.CANCELLED, f"{job.status_reason} (its worker was lost meanwhile)")
        return False
    work.mkdir(parents=True, exist_ok=True)
    (work / model_jobs.SPEC_FILE).write_text(yaml.safe_dump(job.spec, sort_keys=False))
    command = [sys.executable, "-m", "or1_train", *model_jobs.cli_args(job, str(work))]
    with open(work / model_jobs.LOG_FILE, "wb") as out:
        child = subprocess.Popen(command, cwd=settings.BASE_DIR, env=_environment(), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = _supervise(job, child)
    finally:
        if child.poll() is None:  # an error of the worker's own (the database gone): leave nothing behind
            _stop(child)
    if code is None:
        return False
    if code != 0:
        job.finish(JobStatus.FAILED, model_jobs.failure(work, code))
        return False
    model_jobs.store(job, work)
    return job.status == JobStatus.SUCCEEDED


def _run(model, job_id: int, task_id: str) -> bool:
    """``run_here``; an error of the worker's own (unreadable output, a full disk) fails the job with the
    reason instead of leaving it running forever."""
    job = model.objects.get(pk=job_id)
    try:
        return run_here(job, task_id)
    except Exception as exc:
        job.finish(JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="workers.eval_jobs.evaluate", bind=True)
def evaluate(self, job_id: int) -> list[int]:
    """Evaluate the job's model on its eval sets here; the new EvaluationResult ids (none if it failed)."""
    if not _run(EvaluationJob, job_id, self.request.id or ""):
        return []
    return list(EvaluationResult.objects.filter(job_id=job_id).values_list("pk", flat=True))


@shared_task(name="workers.eval_jobs.difficulty", bind=True)
def difficulty(self, job_id: int) -> bool:
    """Estimate the pass counts of the job's source here; whether it succeeded."""
    return _run(DifficultyJob, job_id, self.request.id or "")


@shared_task(name="workers.eval_jobs.submit_slurm")
def submit_slurm(kind: str, job_id: int) -> str:
    return slurm_eval_jobs.submit(model_jobs.MODELS[kind], job_id)


@shared_task(name="workers.eval_jobs.cancel_slurm")
def cancel_slurm(kind: str, job_id: int) -> str:
    return slurm_eval_jobs.cancel(model_jobs.MODELS[kind], job_id)


@shared_task(name="workers.eval_jobs.reconcile_slurm")
def reconcile_slurm() -> dict[str, str]:
    return slurm_eval_jobs.reconcile()


def resend_or_fail_queued() -> dict[str, str]:
    """Jobs queued for longer than ``OR1_JOB_QUEUE_TIMEOUT_S``: send the message again (once), then fail."""
    now = timezone.now()
    limit = timedelta(seconds=settings.OR1_JOB_QUEUE_TIMEOUT_S)
    outcomes = {}
    for model in model_jobs.MODELS.values():
        for job in model.objects.filter(status=JobStatus.QUEUED, created_at__lt=now - limit):
            queue = job_actions.queue_of(job)
            if job.resent_at is None:
                reason = (f"no worker had taken it after {limit.total_seconds():.0f}s: its message was sent again "
                          f"to queue {queue}")
                if model.objects.filter(pk=job.pk, status=JobStatus.QUEUED, resent_at=None).update(
                        resent_at=now, status_reason=reason):
                    job_actions.send(job)
                    outcomes[job.label] = "sent again"
            elif job.resent_at < now - limit:
                reason = (f"no worker took it within {2 * limit.total_seconds():.0f}s, though its message was sent "
                          f"twice to queue {queue}: check that a worker consumes that queue, then start the job again")
                if model.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                        status=JobStatus.FAILED, status_reason=reason, finished_at=now):
                    log.warning("%s: %s", job.label, reason)
                    outcomes[job.label] = "failed"
    return outcomes
