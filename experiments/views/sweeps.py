"""Sweeps in the browser: create one from an experiment, follow it, cancel it, open its comparison.

The form takes the space as YAML (the same object the API takes as JSON) and shows each problem at its path;
the sweep page shows every point (overrides, state, run, best eval score) and links to the comparison
dashboard with the sweep's runs grouped by the swept fields.
"""

from __future__ import annotations

import yaml
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from experiments import access, sweeps
from experiments.alerts import open_alerts_prefetch
from experiments.models import Experiment, Run, Sweep
from or1_train.spec import SpecError

EXAMPLE_SPACE = """grid:
  entropy.target: [0.1, 0.2, 0.3]
  stages[0].max_response_tokens: [64, 96]
# random:
#   loss.clip_high: {uniform: [0.2, 0.3]}
"""


class SweepForm(forms.Form):
    name = forms.CharField(max_length=200)
    space = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "class": "code"}),
        initial=EXAMPLE_SPACE,
        help_text="YAML: grid (lists of values) and random (uniform, log_uniform, int_uniform, choice) over spec "
        "field paths.",
    )
    seeds = forms.IntegerField(min_value=1, max_value=100, initial=1, help_text="Runs of each configuration.")
    samples = forms.IntegerField(min_value=1, max_value=1000, initial=1, help_text="Random draws (random only).")
    sample_seed = forms.IntegerField(initial=0, help_text="Seeds the random draws.")
    concurrency = forms.IntegerField(min_value=1, max_value=1000, initial=2, help_text="Runs in flight at once.")
    launcher = forms.ChoiceField(choices=Run.Launcher.choices)

    def clean_space(self):
        try:
            space = yaml.safe_load(self.cleaned_data["space"])
        except yaml.YAMLError as exc:
            raise forms.ValidationError(f"not valid YAML: {exc}") from None
        if not isinstance(space, dict):
            raise forms.ValidationError("write a mapping with grid and/or random")
        return space


@login_required
def sweep_new(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment.objects.visible_to(request.user).select_related("project__team"), pk=pk)
    if not access.can_write(experiment.project.team_id, request.user):
        raise PermissionDenied("viewers cannot start sweeps")
    spec = experiment.parsed_spec
    form = SweepForm(request.POST or None, initial={"launcher": spec.resources.launcher if spec else "local"})
    space_errors = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sweep = sweeps.create_sweep(
                experiment, request.user, name=data["name"], space=data["space"], seeds=data["seeds"],
                samples=data["samples"], sample_seed=data["sample_seed"], concurrency=data["concurrency"],
                launcher=data["launcher"],
            )
        except SpecError as exc:
            space_errors = exc.errors
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, f"Sweep {sweep.name} created with {sweep.points.count()} point(s).")
            return redirect("sweep-detail", pk=sweep.pk)
    return render(
        request, "collab/sweep_new.html", {"experiment": experiment, "form": form, "space_errors": space_errors}
    )


@login_required
def sweep_detail(request: HttpRequest, pk: int) -> HttpResponse:
    sweep = get_object_or_404(
        Sweep.objects.visible_to(request.user).select_related("project__team", "base_experiment", "created_by"), pk=pk
    )
    results = sweeps.configuration_results(sweep)
    prefetch_related_objects([p for r in results for p in r.points], open_alerts_prefetch("run__alerts"))
    paths = [*sweep.space.get("grid", {}), *sweep.space.get("random", {})]
    benchmarks = sorted({name for r in results for name in r.best})
    rows = [
        {
            "values": [r.overrides.get(path, "") for path in paths],
            "points": r.points,
            "best": [r.summary.get(name) for name in benchmarks],
        }
        for r in results
    ]
    return render(
        request,
        "collab/sweep_detail.html",
        {
            "sweep": sweep,
            "paths": paths,
            "benchmarks": benchmarks,
            "rows": rows,
            "invalid": [p for r in results for p in r.points if p.errors],
            "compare_urls": sweeps.comparison_urls(sweep),
            "can_cancel": not sweep.is_over
            and access.can_manage(sweep.project.team_id, request.user, sweep.created_by_id),
        },
    )


@login_required
def sweep_list(request: HttpRequest) -> HttpResponse:
    found = Sweep.objects.visible_to(request.user).select_related("project__team", "base_experiment", "created_by")
    return render(request, "collab/sweep_list.html", {"sweeps": found[:200]})


@login_required
@require_POST
def sweep_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    sweep = get_object_or_404(Sweep.objects.visible_to(request.user).select_related("project__team"), pk=pk)
    sweeps.cancel_sweep(sweep, request.user)
    messages.success(request, f"Sweep {sweep.name} cancelled: nothing more launches, running runs stop.")
    return redirect("sweep-detail", pk=sweep.pk)
