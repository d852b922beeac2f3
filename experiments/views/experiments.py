"""An experiment's page: its spec (as YAML, with the stage schedule and data mix it implies) and its runs, with
a link to compare them (and, for a duplicate, the runs of the experiment it was made from: the ablation)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from experiments.alerts import with_open_alerts
from experiments.dashboards.selection import MAX_COMPARED
from experiments.models import Experiment, Run


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
    compared = Run.objects.visible_to(request.user).filter(experiment__in=[experiment.pk, experiment.parent_id])
    ids = list(compared.order_by("-id").values_list("pk", flat=True)[:MAX_COMPARED])
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
            "compare_url": f"{reverse('compare')}?runs={','.join(map(str, sorted(ids)))}" if ids else "",
        },
    )
