"""A run: one launch of an experiment's spec. The Run row is the source of truth for the run's state.

Launchers, the reconciler and the ingestion endpoint all move a run through its states with
``Run.transition_to``, which allows only the transitions in ``ALLOWED_TRANSITIONS`` and applies them as a
compare-and-swap on the status column, so two processes racing to change the same run cannot both win (a
finished run is never revived by a late "running" report). Every change is also a ``RunEvent``.

An ended run leaves its end only one way: a ``failed`` or ``cancelled`` run is put back in the queue when a
person resumes it from its newest checkpoint (``experiments.actions.resume_run``, which checks that it has
one); nothing else revives it, and a ``succeeded`` run has nothing left to do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from experiments.models.experiments import Experiment
from experiments.models.teams import TeamScopedQuerySet


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})

#: From each status, where a run may go next.
#: queued     -> starting (a launcher took it), failed (it could not be submitted), cancelled (not started)
#: starting   -> running, or straight to an end when the trainer finished before anyone saw it run;
#:               back to queued when its worker or node was lost and it is relaunched (``restarts`` + 1)
#: running    -> an end, cancelling, or queued for a relaunch
#: cancelling -> an end: cancelled normally, succeeded/failed when the trainer finished before the signal
#: failed, cancelled -> queued when resumed from a checkpoint (``restarts`` + 1; finished_at, exit_code cleared)
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.STARTING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.STARTING: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLING, RunStatus.QUEUED}
    ),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLING, RunStatus.QUEUED}
    ),
    RunStatus.CANCELLING: frozenset({RunStatus.CANCELLED, RunStatus.SUCCEEDED, RunStatus.FAILED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),
    RunStatus.CANCELLED: frozenset({RunStatus.QUEUED}),
}


class InvalidTransition(ValueError):
    """A status change that the lifecycle forbids, or that lost a race with another process."""

    def __init__(self, run_id: int, current: str, requested: str, detail: str = ""):
        self.current, self.requested = current, requested
        super().__init__(
            f"run {run_id} cannot go from {current} to {requested}" + (f": {detail}" if detail else "")
        )


class RunQuerySet(TeamScopedQuerySet):
    team_prefix = "experiment__project__team__"

    def active(self) -> RunQuerySet:
        return self.exclude(status__in=TERMINAL_STATUSES)


def hash_token(token: str) -> str:
    """Ingestion tokens are random and long, so an unsalted SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


class Run(models.Model):
    class Launcher(models.TextChoices):
        LOCAL = "local", "Local worker"
        SLURM = "slurm", "Slurm"

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="runs")
    sweep = models.ForeignKey(
        "experiments.Sweep", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    status_reason = models.TextField(blank=True, help_text="Why the run is in its status, in words.")

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )

    launcher = models.CharField(max_length=16, choices=Launcher.choices, default=Launcher.LOCAL)
    external_job_id = models.CharField(
        max_length=100, blank=True, help_text="Celery task id or Slurm job id."
    )
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    run_dir = models.CharField(max_length=1000, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0)

    spec_as_launched = models.JSONField(
        help_text="The full spec, with defaults, frozen when the run was created."
    )
    environment = models.JSONField(default=dict, blank=True, help_text="Package versions, host, GPUs.")

    current_stage = models.PositiveSmallIntegerField(default=0)
    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField()

    ingest_token_hash = models.CharField(max_length=64, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["experiment", "-created_at"], name="run_experiment_created")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.experiment}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def progress_percent(self) -> float:
        return (
            100.0 * min(self.current_step, self.total_steps) / self.total_steps if self.total_steps else 0.0
        )

    def can_transition_to(self, status: str) -> bool:
        return status in ALLOWED_TRANSITIONS[self.status]

    def transition_to(self, status: str, *, reason: str = "", exit_code: int | None = None) -> RunEvent:
        """Move the run to ``status`` and record it; raises InvalidTransition if that is not allowed.

        The update only applies while the row still has the status this object was loaded with; if another
        process changed it meanwhile, nothing is written and InvalidTransition says what it is now.
        """
        status = RunStatus(status)
        current = self.status
        if not self.can_transition_to(status):
            raise InvalidTransition(self.pk, current, status)
        now = timezone.now()
        changes: dict = {"status": status, "status_reason": reason}
        if status == RunStatus.RUNNING and self.started_at is None:
            changes["started_at"] = now
        if status in TERMINAL_STATUSES:
            changes["finished_at"] = now
        if exit_code is not None:
            changes["exit_code"] = exit_code
        requeued = status == RunStatus.QUEUED
        if requeued and current in TERMINAL_STATUSES:  # resumed: the end it had is history (in its events)
            changes |= {"finished_at": None, "exit_code": None}
        with transaction.atomic():
            updated = Run.objects.filter(pk=self.pk, status=current).update(
                **changes, **({"restarts": F("restarts") + 1} if requeued else {})
            )
            if not updated:
                now_status = Run.objects.filter(pk=self.pk).values_list("status", flat=True).first()
                raise InvalidTransition(self.pk, current, status, f"it changed to {now_status} meanwhile")
            event = self.events.create(
                kind=RunEvent.Kind.STATUS,
                message=f"{current} -> {status}" + (f": {reason}" if reason else ""),
                data={"from": current, "to": status, "reason": reason, "exit_code": exit_code},
            )
        for name, value in changes.items():
            setattr(self, name, value)
        if requeued:
            self.restarts += 1
        return event

    def issue_ingest_token(self) -> str:
        """A new secret that lets the trainer write this run's metrics; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        self.ingest_token_hash = hash_token(token)
        self.save(update_fields=["ingest_token_hash"])
        return token

    def check_ingest_token(self, token: str) -> bool:
        return bool(self.ingest_token_hash) and hmac.compare_digest(self.ingest_token_hash, hash_token(token))


class RunEvent(models.Model):
    """Something that happened to a run: a status change, a stage boundary, a message from the trainer."""

    class Kind(models.TextChoices):
        STATUS = "status", "Status"
        STAGE = "stage", "Stage"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"
        ALERT = "alert", "Alert"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INFO)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["run", "at"], name="runevent_run_at")]

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


class StageRecord(models.Model):
    """One stage of a run's context-length schedule: planned from the spec, timestamped as the run moves."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="stages")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100, blank=True)
    max_response_tokens = models.PositiveIntegerField()
    start_step = models.PositiveIntegerField(help_text="Global step at which the stage begins.")
    end_step = models.PositiveIntegerField(help_text="Global step at which the next stage begins.")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="stagerecord_unique_run_index")]

    def __str__(self) -> str:
        return self.name or f"stage {self.index}"
