"""Jobs that run a model outside training: evaluations of a checkpoint (or any HF model) on a team's eval
sets, and offline difficulty estimation of a dataset source.

A job row is what the user sees (queued, running, succeeded or failed, and why); the Celery task that does
the work (``workers/eval_jobs.py``) moves it on with compare-and-swap updates, so a redelivered message never
re-opens a finished job. The model is recorded as the directory (or hub id) the job read, even for a
checkpoint: retention may delete the checkpoint later, and the job still says what was evaluated.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from experiments.models.checkpoints import Checkpoint
from experiments.models.datasets import DatasetSource
from experiments.models.teams import Team, TeamScopedQuerySet


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ModelJob(models.Model):
    """What both kinds of job share: who asked, which model, and where the job stands."""

    class Engine(models.TextChoices):
        DEFAULT = "", "The run's (vLLM for a model path)"
        VLLM = "vllm", "vLLM"
        HF = "hf", "transformers"

    class Dtype(models.TextChoices):
        DEFAULT = "", "The run's (a model path: its config.json, else bfloat16)"
        BFLOAT16 = "bfloat16", "bfloat16"
        FLOAT16 = "float16", "float16"
        FLOAT32 = "float32", "float32"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The checkpoint evaluated, if the model is one.")
    model_path = models.CharField(max_length=1000, help_text="The HF model directory (or hub id) the job reads.")
    engine = models.CharField(max_length=8, choices=Engine.choices, default=Engine.DEFAULT, blank=True)
    dtype = models.CharField(max_length=8, choices=Dtype.choices, default=Dtype.DEFAULT, blank=True)
    spec = models.JSONField(default=dict, blank=True, help_text="The run spec handed to the trainer's CLI.")
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    status_reason = models.TextField(blank=True)
    work_dir = models.CharField(max_length=1000, blank=True, help_text="Spec, log and outputs of the job.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_terminal(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    def claim(self, work_dir: str) -> bool:
        """Mark the job running (from queued, or running again after a lost worker); False once it has ended."""
        now = timezone.now()
        claimed = type(self).objects.filter(
            pk=self.pk, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)
        ).update(status=JobStatus.RUNNING, started_at=now, work_dir=work_dir, status_reason="")
        if claimed:
            self.status, self.started_at, self.work_dir = JobStatus.RUNNING, now, work_dir
        return bool(claimed)

    def finish(self, status: str, reason: str = "", **fields) -> None:
        now = timezone.now()
        type(self).objects.filter(pk=self.pk, status=JobStatus.RUNNING).update(
            status=status, status_reason=reason, finished_at=now, **fields
        )
        self.refresh_from_db()


class EvaluationJob(ModelJob):
    """avg@k and pass@k of one model on some of the team's eval sets; the results are EvaluationResult rows."""

    eval_sets = models.ManyToManyField(DatasetSource, related_name="evaluation_jobs")
    k = models.PositiveSmallIntegerField()
    samples = models.PositiveSmallIntegerField(help_text="Answers sampled per problem (n >= k).")
    temperature = models.FloatField()
    max_response_tokens = models.PositiveIntegerField(null=True, blank=True)

    class Meta(ModelJob.Meta):
        abstract = False

    def __str__(self) -> str:
        return f"evaluation #{self.pk} of {self.model_path}"


class DifficultyJob(ModelJob):
    """Pass counts of a model on a dataset source (n samples a problem) and the source filtered to 1..n-1."""

    source = models.ForeignKey(DatasetSource, on_delete=models.CASCADE, related_name="difficulty_jobs")
    n = models.PositiveSmallIntegerField(help_text="Samples per problem (OR1: 16 for math, 8 for code).")
    temperature = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="Only the first N problems.")
    model_name = models.CharField(max_length=200, help_text="The key under extra_info.model_difficulty.")
    histogram = models.JSONField(default=dict, blank=True, help_text="Pass count -> problems, for 0..n.")
    num_problems = models.PositiveIntegerField(null=True, blank=True)
    kept = models.PositiveIntegerField(null=True, blank=True, help_text="Problems solved 1..n-1 times.")
    out_path = models.CharField(max_length=1000, blank=True, help_text="Every problem with its pass count.")
    filtered_path = models.CharField(max_length=1000, blank=True, help_text="The problems solved 1..n-1 times.")
    filtered_source = models.ForeignKey(DatasetSource, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+", help_text="The source registered from the filtered file.")

    class Meta(ModelJob.Meta):
        abstract = False

    def __str__(self) -> str:
        return f"difficulty #{self.pk} of {self.source} with {self.model_name}"
