"""The audit log page: who launched, cancelled, shared or revoked what, and when, for a team's admins."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from experiments import access
from experiments.models import Team


@login_required
def audit_log(request: HttpRequest, team_pk: int) -> HttpResponse:
    """The team's audit log, for its admins and owners (members 403, everyone else 404)."""
    team = get_object_or_404(Team.objects.filter(pk__in=access.team_ids(request.user)), pk=team_pk)
    if not access.is_admin(team, request.user):
        raise PermissionDenied("the audit log is for the team's admins and owners")
    page = Paginator(team.audit_entries.all(), 100).get_page(request.GET.get("page"))
    return render(request, "collab/audit.html", {"team": team, "page": page})
