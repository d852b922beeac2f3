"""The home page: the user's teams, their projects, recent experiments and recent runs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from experiments.alerts import with_open_alerts
from experiments.models import Experiment, Membership, Project, Run

RECENT = 20


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    memberships = Membership.objects.filter(user=user).select_related("team").order_by("team__name")
    projects = (
        Project.objects.visible_to(user).select_related("team").annotate(n_experiments=Count("experiments"))
    )
    experiments = (
        Experiment.objects.visible_to(user)
        .select_related("project__team")
        .annotate(n_runs=Count("runs"))
        .order_by("-created_at", "-id")[:RECENT]
    )
    runs = with_open_alerts(
        Run.objects.visible_to(user).select_related("experiment__project__team").order_by("-created_at", "-id")
    )
    return render(
        request,
        "experiments/home.html",
        {
            "memberships": memberships,
            "projects": projects,
            "experiments": experiments,
            "runs": runs[:RECENT],
            "writable_teams": {m.team_id for m in memberships if m.role in Membership.WRITE_ROLES},
        },
    )
