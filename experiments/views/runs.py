"""A run's page: status, stage, progress, timestamps and events.

While the run is not finished the status panel re-fetches itself every few seconds with htmx (the NetBox
pattern: poll only while the job can still change), so a page left open follows the run without a reload.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from experiments.models import Run

POLL_SECONDS = 5


def _visible_run(request: HttpRequest, pk: int) -> Run:
    return get_object_or_404(
        Run.objects.visible_to(request.user).select_related("experiment__project__team", "created_by"), pk=pk
    )


def _status_context(run: Run) -> dict:
    stages = list(run.stages.all())
    current = next((s for s in stages if s.index == run.current_stage), None)
    return {"run": run, "stages": stages, "current_stage": current, "poll_seconds": POLL_SECONDS}


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    context = _status_context(run) | {"events": run.events.order_by("-at", "-id")[:200]}
    return render(request, "experiments/run_detail.html", context)


@login_required
def run_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The status panel alone, for the page's polling."""
    return render(request, "experiments/_run_status.html", _status_context(_visible_run(request, pk)))
