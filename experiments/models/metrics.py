"""Metric points: one narrow table keyed by (run, name, step).

The key makes ingestion idempotent: a trainer that retries a batch, or a replay of ``metrics.jsonl``, writes
each point again with the same key and so replaces it instead of adding a duplicate. The unique constraint's
index (run, name, step) is also the index every chart read uses ("one metric of one run, by step").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.db import models

from experiments.models.runs import Run


class Point(NamedTuple):
    name: str
    step: int
    value: float
    wall_time: float | None = None


class MetricPoint(models.Model):
    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points")
    name = models.CharField(max_length=200)
    step = models.PositiveIntegerField()
    value = models.FloatField()
    wall_time = models.FloatField(null=True, blank=True, help_text="Seconds since the Unix epoch, as logged.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name", "step"], name="metricpoint_unique_run_name_step")
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.step}={self.value:g}"

    @classmethod
    def upsert(cls, run: Run, points: Iterable[Point], batch_size: int = 1000) -> int:
        """Write ``points`` in bulk; a point whose key exists replaces the stored value. Returns the count."""
        rows = [cls(run=run, name=p.name, step=p.step, value=p.value, wall_time=p.wall_time) for p in points]
        cls.objects.bulk_create(
            rows,
            batch_size=batch_size,
            update_conflicts=True,
            unique_fields=["run", "name", "step"],
            update_fields=["value", "wall_time"],
        )
        return len(rows)
