"""Checkpoints a run registered: one directory per checkpoint, described by its ``manifest.json``."""

from __future__ import annotations

from django.db import models

from experiments.models.runs import Run


class Checkpoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    stage = models.PositiveSmallIntegerField()
    path = models.CharField(max_length=1000)
    manifest = models.JSONField(
        default=dict, blank=True, help_text="The checkpoint's manifest.json as written."
    )
    metrics = models.JSONField(default=dict, blank=True, help_text="Metrics at this step, for tables.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpoint_unique_run_step")]

    def __str__(self) -> str:
        return f"{self.run} @ step {self.step}"
