"""A project's checkpoint retention policy: how many checkpoints of each run ``prune_checkpoints`` keeps.

A project without a policy is never pruned: deleting checkpoints is something an operator chooses, per
project, with ``manage.py set_retention`` (or the admin). The rules themselves live in
``experiments/retention.py``; the newest checkpoint of a run and its best one by the policy's metric are
always kept, whatever the numbers say.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from experiments.models.teams import Project


class RetentionPolicy(models.Model):
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="retention_policy")
    keep_last = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="The newest K checkpoints of every run are kept (at least 1: the one a resume starts "
        "from).",
    )
    keep_best = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="The N best checkpoints by the metric are kept as well (at least 1).",
    )
    best_metric = models.CharField(
        max_length=200,
        blank=True,
        help_text="Metric that ranks checkpoints, e.g. val/aime24/avg@8. Blank: the mean of every "
        "val/<set>/avg@<k> logged at the checkpoint's step.",
    )
    higher_is_better = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(keep_last__gte=1), name="retention_keeps_newest"),
            models.CheckConstraint(condition=models.Q(keep_best__gte=1), name="retention_keeps_best"),
        ]

    def __str__(self) -> str:
        metric = self.best_metric or "mean val/*/avg@k"
        direction = "highest" if self.higher_is_better else "lowest"
        return f"{self.project}: keep last {self.keep_last}, best {self.keep_best} by {direction} {metric}"
