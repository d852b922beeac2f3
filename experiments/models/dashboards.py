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

    A chart over 10,000 steps of 20 runs would otherwise aggregate 200,000 points per request; with tiles of
    every level (``experiments.dashboards.tiles.LEVELS``) each bucket of a chart is one tile, read in index
    order. Only finite values are counted. PostgreSQL only: other databases chart the points directly.

    The tiles are brought up to date from the points by ``tiles.refresh`` (before a chart reads them, and by
    a periodic task), never in the ingestion path: a trigger on the metric table only notes, in
    ``TileState``, which series changed from which step. So ingestion pays for one small upsert per series
    and batch, and however the points change (a replayed batch, ``MetricPoint.upsert``, a resumed run's
    truncation, a late backfill), the tiles of a series are merged or rebuilt to match them exactly.
    """

    id = models.BigAutoField(primary_key=True)
    # No database-level foreign key: a refresh may write tiles while a run is being deleted; the rows of
    # deleted runs are removed by tiles.refresh_pending (and by Django's cascade when it deletes the run).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_constraint=False)
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
            # Covering: a chart reads these columns by this key, so the read is an index-only scan.
            models.UniqueConstraint(
                fields=["run", "name", "level", "tile"],
                name="metrictile_unique_key",
                include=[
                    "n",
                    "sum_v",
                    "min_s",
                    "min_v",
                    "max_s",
                    "max_v",
                    "first_s",
                    "first_v",
                    "first_w",
                    "last_s",
                    "last_v",
                    "last_w",
                ],
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id}: steps {self.tile * self.level}+{self.level}"


class TileState(models.Model):
    """How far the tiles of one series are merged, and whether its points changed since.

    ``mark``: the tiles hold exactly the points with step <= mark (-1: none). ``pending``: the smallest step
    of the points inserted, updated or deleted since (written by the trigger of migration 0007), or null.
    A refresh merges the points above the mark when ``pending > mark``, and rebuilds the series otherwise.
    """

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    name = models.CharField(max_length=200)
    mark = models.IntegerField(default=-1)
    pending = models.IntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="tilestate_unique_series")]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id}: merged to step {self.mark}, pending from {self.pending}"
