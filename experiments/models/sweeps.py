"""A sweep: runs of a base experiment over a space of spec overrides, at most ``concurrency`` at a time."""

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
    concurrency = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
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
