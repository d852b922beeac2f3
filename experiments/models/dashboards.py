"""Dashboard models: saved comparison views, and the pre-aggregated metric tiles the charts read.

Saved views: a named state of the comparison dashboard that a team shares by its URL.

``state`` is the dashboard's query string as a dict of lists (``QueryDict.lists()``): run selection, metrics,
smoothing, grouping, x axis. Storing the query rather than a bespoke schema means a saved view opens exactly
what its author saw, and a view saved before the dashboard gained a parameter still opens (the page supplies
the default). A view belongs to a team: every member can open it, and runs it names that a member cannot see
are simply not shown to them.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.db import models

from experiments.models.runs import Run
from experiments.models.teams import Team, TeamScopedQuerySet


class SavedView(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=200)
    state = models.JSONField(default=dict, help_text="The dashboard's query parameters: {name: [values]}.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="saved_views"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="savedview_unique_team_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def query_string(self) -> str:
        return urlencode([(key, value) for key, values in self.state.items() for value in values])


class MetricTile(models.Model):
    """A block of ``level`` consecutive steps of one metric of one run, pre-aggregated for the charts.

    A chart over 10,000 steps of 20 runs would otherwise aggregate 200,000 points per request; reading tiles
    of 8 steps instead (``experiments.dashboards.series``) reads an eighth as many rows, and coarser levels
    keep longer runs just as cheap. PostgreSQL keeps the tiles exact itself, with statement triggers on the
    metric table (migration 0006): inserted points are merged into their tiles, and a tile whose points were
    updated or deleted (a resumed run's truncation) is rebuilt from the points that remain. So every writer
    (the ingestion API, ``import_run_dir``, ``MetricPoint.upsert``, a bulk COPY) keeps them right without
    knowing they exist. Only finite values are counted. Other databases have no tiles; there the charts
    aggregate points directly.
    """

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    level = models.PositiveIntegerField(help_text="Steps per tile: one of dashboards.tiles.LEVELS.")
    tile = models.PositiveIntegerField(help_text="step // level")
    n = models.PositiveIntegerField(help_text="Finite points in the tile.")
    sum_v = models.FloatField()
    sum_s = models.FloatField()
    min_v = models.FloatField()
    min_s = models.PositiveIntegerField()
    max_v = models.FloatField()
    max_s = models.PositiveIntegerField()
    first_s = models.PositiveIntegerField()
    first_v = models.FloatField()
    first_w = models.FloatField(null=True)
    last_s = models.PositiveIntegerField()
    last_v = models.FloatField()
    last_w = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "name", "level", "tile"], name="metrictile_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id}: steps {self.tile * self.level}+{self.level}"
