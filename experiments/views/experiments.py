"""An experiment's page: its spec (as YAML, with the stage schedule and data mix it implies) and its runs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from experiments.alerts import with_open_alerts
from experiments.models import Experiment


@login_required
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(
        Experiment.objects.visible_to(request.user).select_related("project__team", "parent", "created_by"),
        pk=pk,
    )
    spec = experiment.parsed_spec
    stages = mix = None
    if spec is not None:
        stages = [
            {"index": i, "stage": stage, "start": sum(s.steps for s in spec.stages[:i])}
            for i, stage in enumerate(spec.stages)
        ]
        mix = list(zip(spec.data.sources, spec.data.percentages(), strict=True))
    return render(
        request,
        "experiments/experiment_detail.html",
        {
            "experiment": experiment,
            "spec": spec,
            "stages": stages,
            "mix": mix,
            "runs": with_open_alerts(experiment.runs.order_by("-created_at", "-id")),
            "can_write": experiment.project.team.can_write(request.user),
        },
    )
