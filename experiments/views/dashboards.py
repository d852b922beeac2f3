"""Dashboards: the run page's live charts and alert banner, the rollout browser, the comparison dashboard.

Charts are drawn in the browser by plotly.js from JSON these views return; every series is downsampled on the
server (``experiments.dashboards.series``) so a chart never receives more than about ``OR1_CHART_MAX_POINTS``
points per line, and a zoomed range that is small enough comes back exact. A run page polls for increments
(only the points past the steps it has) every few seconds while its tab is visible and the run can change.

The comparison dashboard keeps its whole state in the query string (runs, metrics, smoothing, grouping, x axis),
so its URL is the thing to share; a saved view is a named copy of that query for the team.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from experiments.alerts import with_open_alerts
from experiments.dashboards import catalog, rollouts, selection, series, specdiff
from experiments.dashboards.downsample import Downsampled
from experiments.models import Run, SavedView, Team
from experiments.models.runs import TERMINAL_STATUSES

POLL_SECONDS = 3
#: the comparison refetches every chart while a run can change: a heavier request than the run page's increments
COMPARE_POLL_SECONDS = 10
#: the comparison's chart settings in its query string (the page's script reads and writes them)
CHART_PARAMS = ("x", "smooth", "weight", "half", "group", "band", "log")


def _visible_run(request: HttpRequest, pk: int) -> Run:
    return get_object_or_404(Run.objects.visible_to(request.user).select_related("experiment__project__team"), pk=pk)


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    if value == "":
        return None
    try:
        return max(0, int(float(value)))
    except ValueError:
        raise ValueError(f"{name} must be a step number") from None


def _series_json(data: Downsampled, *, with_means: bool) -> dict:
    out = {"step": data.steps, "y": data.values, "exact": data.exact, "count": data.count}
    if with_means and data.means is not None:
        index, mean, count = data.means
        out["means"] = {"b": index, "y": mean, "n": count}
    return out


def _json(payload: dict) -> JsonResponse:
    return JsonResponse(payload, json_dumps_params={"separators": (",", ":"), "allow_nan": False})


def _stages(run: Run) -> list[dict]:
    return [
        {"index": s.index, "name": s.name, "start": s.start_step, "end": s.end_step, "tokens": s.max_response_tokens}
        for s in run.stages.all()
    ]


# ------------------------------------------------------------------------------------------ run page


def _run_panels(run: Run) -> list[catalog.Panel]:
    return catalog.run_panels(run.spec_as_launched or {}, series.metric_names([run.pk], prefix="val/"))


def _panel_names(panels: list[catalog.Panel]) -> list[str]:
    names = dict.fromkeys(name for panel in panels for name in panel.names())
    names.update(dict.fromkeys([series.TOKENS, series.CLOCK]))
    return list(names)


@login_required
@require_GET
def run_charts(request: HttpRequest, pk: int) -> JsonResponse:
    """The run page's chart data.

    No ``after``: the panels and every series they draw (``lo``/``hi`` limit the steps, for a zoomed chart).
    ``after={"name": step, ...}``: only the points past those steps (the page's poll), with ``reset`` when the
    page must reload instead (the run was resumed from an earlier step, or more arrived than is worth appending).
    """
    run = _visible_run(request, pk)
    live = not run.is_terminal
    if "after" in request.GET:
        try:
            after = json.loads(request.GET["after"])
            if not isinstance(after, dict) or not all(isinstance(v, int) for v in after.values()):
                raise ValueError
        except ValueError:
            return HttpResponseBadRequest("after must be a JSON object of series name -> step")
        increment = series.read_after(run.pk, {str(k): v for k, v in after.items()})
        return _json(
            {
                "live": live,
                "reset": increment.reset,
                "append": {
                    name: {"step": [p[0] for p in pts], "y": [p[1] for p in pts]}
                    for name, pts in increment.points.items()
                },
                "evals": series.metric_names([run.pk], prefix="val/"),
                "current_step": run.current_step,
            }
        )
    try:
        lo, hi = _int_param(request, "lo"), _int_param(request, "hi")
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    panels = _run_panels(run)
    names = [n for n in request.GET.get("names", "").split(",") if n] or _panel_names(panels)
    data = series.read([run.pk], names, lo=lo, hi=hi)
    return _json(
        {
            "live": live,
            "panels": catalog.panels_json(panels),
            "evals": series.metric_names([run.pk], prefix="val/"),
            "stages": _stages(run),
            "current_step": run.current_step,
            "range": None if lo is None and hi is None else [lo, hi],
            "series": {name: _series_json(d, with_means=False) for (_, name), d in data.series.items()},
        }
    )


def _alerts_context(run: Run) -> dict:
    return {"run": run, "alerts": list(run.alerts.filter(cleared_at__isnull=True)), "poll_seconds": POLL_SECONDS}


@login_required
def run_alerts(request: HttpRequest, pk: int) -> HttpResponse:
    """The run page's alert banner alone, for its polling."""
    return render(request, "experiments/_alert_banner.html", _alerts_context(_visible_run(request, pk)))


@login_required
def run_rollouts(request: HttpRequest, pk: int) -> HttpResponse:
    """The rollout browser: one step's sampled groups (``?step=N``, default the newest)."""
    run = _visible_run(request, pk)
    available = rollouts.steps(run.run_dir)
    step = _int_param(request, "step") if request.GET.get("step", "").isdigit() else None
    if step is None and available:
        step = available[-1]
    data = rollouts.read_step(run.run_dir, step) if step is not None else None
    position = available.index(step) if step in available else None
    return render(
        request,
        "experiments/rollouts.html",
        {
            "run": run,
            "steps": available,
            "step": step,
            "data": data,
            "previous": available[position - 1] if position else None,
            "next": available[position + 1] if position is not None and position + 1 < len(available) else None,
        },
    )


# ---------------------------------------------------------------------------------------- comparison


def _run_label(run: Run) -> str:
    return f"#{run.pk} {run.experiment.name}"


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    chosen = selection.Selection.from_query(request.GET)
    runs = selection.compared(request.user, chosen)
    candidates = list(with_open_alerts(selection.candidates(request.user, chosen))[: selection.MAX_CANDIDATES])
    names = series.metric_names([run.pk for run in runs]) if runs else []
    metrics = [name for value in request.GET.getlist("metrics") for name in value.split(",") if name] if runs else []
    if runs and not metrics:
        metrics = catalog.compare_defaults(runs[0].spec_as_launched or {}, names)
    specs = [run.spec_as_launched or {} for run in runs]
    diff = specdiff.differing(specs) if len(runs) > 1 else []
    teams = list(Team.objects.visible_to(request.user))
    view = None
    if request.GET.get("view", "").isdigit():
        view = SavedView.objects.visible_to(request.user).filter(pk=int(request.GET["view"])).first()
    state = {
        "runs": [
            {
                "id": run.pk,
                "label": _run_label(run),
                "url": reverse("run-detail", args=[run.pk]),
                "status": run.status,
                "spec": specdiff.flatten(run.spec_as_launched or {}),
            }
            for run in runs
        ],
        "metrics": metrics,
        "directions": {m: catalog.direction(m) for m in metrics},
        "data_url": reverse("compare-data"),
        "poll_s": COMPARE_POLL_SECONDS,
        "group_paths": [path for path, _ in diff],
    }
    return render(
        request,
        "experiments/compare.html",
        {
            "selection": chosen,
            "choices": selection.choices(request.user),
            "candidates": candidates,
            "runs": runs,
            "picked": set(chosen.runs) or {run.pk for run in runs},
            "metric_names": names,
            "metrics": metrics,
            "diff_rows": specdiff.table(diff),
            "state": state,
            "teams": teams,
            "saved_views": SavedView.objects.visible_to(request.user).select_related("team")[:50],
            "view": view,
            "max_compared": selection.MAX_COMPARED,
            "chart_params": [(key, value) for key in CHART_PARAMS for value in request.GET.getlist(key)[:1]],
        },
    )


@login_required
@require_GET
def compare_data(request: HttpRequest) -> JsonResponse:
    """One metric of several runs, downsampled on shared buckets.

    ``runs=1,2,3&metric=NAME`` [``&lo=&hi=`` steps] [``&x=tokens|time``: also each run's step -> x map]
    [``&means=1``: also each bucket's mean and count, which smoothing and grouping need; a plain overlay
    does not, and they are a third of the payload]. ``live`` says whether one of the runs can still change
    (the page then polls).
    """
    ids = list(selection.parse_ids(request.GET.getlist("runs")))[: selection.MAX_COMPARED]
    metric = request.GET.get("metric", "")
    if not ids or not metric:
        return HttpResponseBadRequest("runs and metric are required")
    try:
        lo, hi = _int_param(request, "lo"), _int_param(request, "hi")
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    statuses = dict(Run.objects.visible_to(request.user).filter(pk__in=ids).values_list("pk", "status"))
    visible = list(statuses)
    data = series.read(visible, [metric], lo=lo, hi=hi)
    payload = {
        "metric": metric,
        "live": any(status not in TERMINAL_STATUSES for status in statuses.values()),
        "direction": catalog.direction(metric),
        "buckets": None if data.buckets is None else {"lo": data.buckets.lo, "width": data.buckets.width},
        "series": [
            {
                "run": run_id,
                **_series_json(d, with_means=request.GET.get("means") == "1"),
                "final": d.final,
                "max": d.maximum,
                "min": d.minimum,
            }
            for (run_id, _), d in sorted(data.series.items())
        ],
    }
    x = request.GET.get("x", "step")
    if x in ("tokens", "time"):
        name = series.TOKENS if x == "tokens" else series.CLOCK
        # A step -> x map only grows, so a quarter of the budget interpolates it well: less to send.
        maps = series.read(visible, [name], lo=lo, hi=hi, max_points=series.budget() // 4)
        payload["xmap"] = {
            str(run_id): {"step": d.steps, "x": [round(x, 1) for x in d.values]}
            for (run_id, _), d in maps.series.items()
        }
    return _json(payload)


@login_required
@require_POST
def compare_save(request: HttpRequest) -> HttpResponse:
    """Save the dashboard's current query as a named view of a team (replacing one of the same name)."""
    team = get_object_or_404(Team.objects.visible_to(request.user), pk=request.POST.get("team") or 0)
    if not team.can_write(request.user):
        raise PermissionDenied(f"{request.user} may not save views for {team}")
    name = request.POST.get("name", "").strip()[:200]
    query = request.POST.get("query", "").lstrip("?")
    if not name:
        messages.error(request, "Give the view a name to save it.")
        return redirect(f"{reverse('compare')}?{query}")
    state = {key: values for key, values in QueryDict(query).lists() if key != "view"}
    view, _ = SavedView.objects.update_or_create(
        team=team, name=name, defaults={"state": state, "created_by": request.user}
    )
    link = request.build_absolute_uri(view_url(view))
    messages.success(request, f"Saved the view “{name}” for {team}; share its link: {link}")
    return redirect(view_url(view))


def view_url(view: SavedView) -> str:
    return reverse("compare-view", args=[view.pk])


@login_required
def saved_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A saved view's stable link: opens the dashboard with the saved query."""
    view = get_object_or_404(SavedView.objects.visible_to(request.user), pk=pk)
    return redirect(f"{reverse('compare')}?{view.query_string}&{urlencode({'view': view.pk})}")
