"""Jobs that run a model outside training: evaluations of a checkpoint (or any HF model) on a team's eval
sets, and offline difficulty estimation of a dataset source.

A job row is what the user sees (queued, running, cancelling, succeeded, failed or cancelled, and why); the
worker that does the work (``workers/eval_jobs.py`` on a local worker, ``workers/slurm_eval_jobs.py`` on a Slurm
cluster) moves it on with compare-and-swap updates, so a redelivered or re-sent message never re-opens a finished
job or runs a running one twice. The model is recorded as the directory (or hub id) the job read, even for a
checkpoint: retention may delete the checkpoint later, and the job still says what was evaluated.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from experiments.models.checkpoints import Checkpoint
from experiments.models.clusters import SlurmCluster
from experiments.models.datasets import DatasetSource
from experiments.models.runs import Run
from experiments.models.teams import Team, TeamScopedQuerySet


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


#: a worker (or a Slurm job) has it: what a cancel must stop, and what the Slurm reconciler follows
ACTIVE_JOB_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELLING)
TERMINAL_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


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

    #: "evaluation" or "difficulty": names the job in Slurm (or1-<kind>-<id>), the audit log and the tasks
    kind = ""

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
    launcher = models.CharField(max_length=8, choices=Run.Launcher.choices, default=Run.Launcher.LOCAL)
    cluster = models.ForeignKey(SlurmCluster, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                help_text="The team's Slurm cluster it runs on (Slurm launcher).")
    gpus = models.PositiveSmallIntegerField(null=True, blank=True, help_text="GPUs it asks Slurm for (one node).")
    slurm_job_id = models.PositiveBigIntegerField(null=True, blank=True)
    slurm_state = models.CharField(max_length=32, blank=True, help_text="Slurm's last word on its job.")
    task_id = models.CharField(max_length=64, blank=True, help_text="The Celery message a local worker runs it for.")
    resent_at = models.DateTimeField(null=True, blank=True,
                                     help_text="When beat sent its message again (no worker had taken it).")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def label(self) -> str:
        return f"{self.kind} job {self.pk}"

    def claim(self, work_dir: str, task_id: str = "", reason: str = "") -> bool:
        """Mark the job running: from queued, or (``task_id`` given) again by a redelivery of the message that
        first claimed it, after its worker was lost. A second copy of the message (beat re-sends one that no
        worker took) has another id and finds the job taken; False then, and once the job has ended."""
        now = timezone.now()
        claimable = models.Q(status=JobStatus.QUEUED)
        if task_id:
            claimable |= models.Q(status=JobStatus.RUNNING, task_id=task_id)
        claimed = type(self).objects.filter(claimable, pk=self.pk).update(
            status=JobStatus.RUNNING, started_at=now, work_dir=work_dir, status_reason=reason, task_id=task_id
        )
        self.refresh_from_db()
        return bool(claimed)

    def note(self, reason: str, **fields) -> None:
        """Say where an active job stands (Slurm's state, its nodes) without changing its status."""
        type(self).objects.filter(pk=self.pk, status__in=ACTIVE_JOB_STATUSES).update(status_reason=reason, **fields)

    def finish(self, status: str, reason: str = "", **fields) -> bool:
        """End an active job (a cancelling one too: it may still succeed if it finished first); False if it was
        not active any more."""
        now = timezone.now()
        ended = type(self).objects.filter(pk=self.pk, status__in=ACTIVE_JOB_STATUSES).update(
            status=status, status_reason=reason, finished_at=now, **fields
        )
        self.refresh_from_db()
        return bool(ended)


class EvaluationJob(ModelJob):
    """avg@k and pass@k of one model on some of the team's eval sets; the results are EvaluationResult rows."""

    kind = "evaluation"

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

    kind = "difficulty"

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
