"""A sweep: runs of a base experiment over a space of spec overrides, at most ``concurrency`` at a time.

``space`` says which spec fields vary and how: ``{"grid": {path: [values]}, "random": {path: distribution}}``
(``experiments.sweeps`` parses and expands it); ``samples`` random draws (seeded by ``sample_seed``) are
crossed with the grid, and each configuration runs ``seeds`` times with ``seed`` = base seed + 0, 1, ...
Every point of the expansion is a ``SweepPoint`` row, validated when the sweep is created: an invalid one
keeps its errors and is never launched; a valid one waits until a slot under the concurrency limit is free.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from experiments.models.experiments import Experiment
from experiments.models.teams import Project, ProjectScopedQuerySet


class Sweep(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sweeps")
    base_experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="sweeps")
    name = models.CharField(max_length=200)
    space = models.JSONField(
        default=dict, help_text='Spec paths to the values to try, e.g. {"entropy.target": [0.1, 0.2]}.'
    )
    concurrency = models.PositiveSmallIntegerField(default=1, help_text="Runs in flight at once, at most.")
    seeds = models.PositiveSmallIntegerField(default=1, help_text="Runs of each configuration, seeds 0, 1, ...")
    samples = models.PositiveSmallIntegerField(default=1, help_text="Random draws from the space's ranges.")
    sample_seed = models.IntegerField(default=0, help_text="Seeds the random draws, so a sweep can be repeated.")
    launcher = models.CharField(
        max_length=16, default="local", help_text="resources.launcher of every run: local or slurm."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="sweep_unique_project_name"),
            models.CheckConstraint(condition=models.Q(concurrency__gte=1), name="sweep_concurrency_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_over(self) -> bool:
        return self.status in (self.Status.FINISHED, self.Status.CANCELLED)


class SweepPoint(models.Model):
    """One point of a sweep's space: the overrides, the spec they make, and what became of it."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a slot"
        LAUNCHED = "launched", "Launched"
        INVALID = "invalid", "Invalid spec"
        NOT_LAUNCHED = "not_launched", "Not launched"

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="points")
    index = models.PositiveIntegerField()
    configuration = models.PositiveIntegerField(help_text="Points that differ only in their seed share this.")
    overrides = models.JSONField(help_text="Spec path -> value for this point, seed included.")
    spec = models.JSONField(help_text="The base experiment's spec with the overrides applied.")
    errors = models.JSONField(default=list, blank=True, help_text="[{path, message}] when the spec is invalid.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True, help_text="Why a point was not launched.")
    run = models.OneToOneField(
        "experiments.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="sweep_point"
    )

    class Meta:
        ordering = ["sweep", "index"]
        constraints = [models.UniqueConstraint(fields=["sweep", "index"], name="sweeppoint_unique_sweep_index")]
        indexes = [models.Index(fields=["sweep", "state"], name="sweeppoint_sweep_state")]

    def __str__(self) -> str:
        return f"{self.sweep} #{self.index}"
