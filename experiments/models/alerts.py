"""Health alerts on a run: entropy collapse or explosion, the entropy coefficient pinned at its maximum, a
stalled run, rising truncation.

A RunAlert row is one episode of one kind of trouble: raised when its rule first holds, cleared (never deleted)
when the rule stops holding, so the run's history keeps every episode and the pages show the open ones. At
most one episode of a kind is open per run (a partial unique constraint), which makes raising idempotent under
two checkers racing. Each raise and clear is also a ``RunEvent`` of kind ``alert`` in the run's event log. The
rules live in ``experiments/alerts.py``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from experiments.models.runs import Run


class RunAlert(models.Model):
    class Kind(models.TextChoices):
        ENTROPY_COLLAPSE = "entropy_collapse", "Entropy collapse"
        ENTROPY_EXPLOSION = "entropy_explosion", "Entropy explosion"
        COEF_PINNED = "coef_pinned", "Entropy coefficient pinned at its maximum"
        STALLED = "stalled", "Stalled"
        TRUNCATION_RISING = "truncation_rising", "Rising truncation"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.TextField(help_text="What was seen, with the numbers, in words.")
    step = models.PositiveIntegerField(null=True, blank=True, help_text="The newest step the rule looked at.")
    data = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "kind"], condition=Q(cleared_at__isnull=True), name="runalert_one_open_per_kind"
            )
        ]
        indexes = [models.Index(fields=["run", "cleared_at"], name="runalert_run_cleared")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on run {self.run_id}" + ("" if self.is_open else " (cleared)")

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None
