"""Datasets a team has registered, and named weighted mixes of them.

A mix is what a run spec's ``data`` section describes; ``DatasetMix.as_spec_data`` produces that section so a
form can start a spec from a saved mix. The spec (not these rows) is what a run is launched with.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from experiments.models.teams import Team, TeamScopedQuerySet


class DatasetSource(models.Model):
    class Format(models.TextChoices):
        # The formats the trainer's data loader reads (or1_train.spec.DataSource.format; eval sets also read
        # livecodebench, or1_train.spec.EvalSet.format).
        AUTO = "auto", "Auto-detect"
        JSONL = "jsonl", "JSON lines"
        PARQUET = "parquet", "Parquet"
        HF = "hf", "Hugging Face dataset directory"
        OR1 = "or1", "Skywork-OR1 layout"
        LIVECODEBENCH = "livecodebench", "LiveCodeBench copy (eval sets only)"

    class Ability(models.TextChoices):
        MATH = "math", "Math"
        CODE = "code", "Code"
        OTHER = "other", "Other"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="dataset_sources")
    name = models.CharField(max_length=100)
    path = models.CharField(max_length=1000, help_text="A file or directory the workers can read.")
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.AUTO)
    ability = models.CharField(max_length=16, choices=Ability.choices, default=Ability.MATH)
    num_prompts = models.PositiveIntegerField(null=True, blank=True, help_text="Unknown until counted.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="datasetsource_unique_team_name")
        ]
        ordering = ["team__name", "name"]

    def __str__(self) -> str:
        return self.name


class DatasetMix(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="dataset_mixes")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    sources = models.ManyToManyField(DatasetSource, through="DatasetMixEntry", related_name="mixes")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="datasetmix_unique_team_name")]
        ordering = ["team__name", "name"]
        verbose_name_plural = "dataset mixes"

    def __str__(self) -> str:
        return self.name

    def as_spec_data(self) -> dict[str, Any]:
        """The run spec's ``data`` section for this mix (weights stay relative, as in the spec)."""
        entries = self.entries.select_related("source").order_by("id")
        return {
            "sources": [
                {"name": e.source.name, "path": e.source.path, "format": e.source.format, "weight": e.weight}
                for e in entries
            ]
        }


class DatasetMixEntry(models.Model):
    mix = models.ForeignKey(DatasetMix, on_delete=models.CASCADE, related_name="entries")
    source = models.ForeignKey(DatasetSource, on_delete=models.PROTECT, related_name="mix_entries")
    weight = models.FloatField(default=1.0, help_text="Relative weight; the mix's weights need not sum to 1.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mix", "source"], name="datasetmixentry_unique_mix_source"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="datasetmixentry_weight_positive"),
        ]
        verbose_name_plural = "dataset mix entries"

    def __str__(self) -> str:
        return f"{self.source} x{self.weight:g}"

    def clean(self) -> None:
        if self.mix_id and self.source_id and self.mix.team_id != self.source.team_id:
            raise ValidationError({"source": "A mix can only use its own team's datasets."})
