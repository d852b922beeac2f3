"""Saved comparison views: a named state of the comparison dashboard that a team shares by its URL.

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
