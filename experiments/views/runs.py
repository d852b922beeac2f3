"""Runs: the list of every run the user can see, a run's page, and the Launch, Cancel and Resume buttons.

A page left open follows its runs without a reload: each live panel (status and metrics, events, log tail)
re-fetches itself with htmx every few seconds while the tab is visible, and stops once the run has ended (the
last answer no longer carries the trigger; the NetBox pattern of polling only while a job can change).
Launch, Cancel and Resume go through ``experiments.actions`` (``launch_run``, ``cancel_run``, ``resume_run``),
which enforce the roles: a viewer gets 403. Resume is offered only to those who may resume the run, and only
while the action would accept it (failed or cancelled, with a checkpoint); a refusal is shown in its words.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from experiments import actions
from experiments.access import can_manage
from experiments.alerts import with_open_alerts
from experiments.models import Experiment, InvalidTransition, Run
from experiments.runlog import tail
from experiments.runstats import (
    eta_seconds,
    format_duration,
    format_value,
    latest_evals,
    latest_metrics,
    with_last_reward_and_entropy,
)
from or1_train.spec import SpecError

POLL_SECONDS = 3
LOG_LINES = 100
EVENTS_SHOWN = 200
RUNS_PER_PAGE = 50


def _visible_run(request: HttpRequest, pk: int) -> Run:
    return get_object_or_404(
        Run.objects.visible_to(request.user).select_related("experiment__project__team", "created_by"), pk=pk
    )


def _status_context(request: HttpRequest, run: Run) -> dict:
    stages = list(run.stages.all())
    current = next((s for s in stages if s.index == run.current_stage), None)
    team = run.experiment.project.team
    resumable = run.status in actions.RESUMABLE_STATUSES and can_manage(team, request.user, run.created_by_id)
    checkpoint = actions.newest_checkpoint(run) if resumable else None
    return {
        "run": run,
        "stages": stages,
        "current_stage": current,
        "poll_seconds": POLL_SECONDS,
        "eta": format_duration(eta_seconds(run)),
        "metrics": latest_metrics(run),
        "evals": latest_evals(run),
        "can_write": team.can_write(request.user),
        "resume_from": checkpoint if resumable and not actions.resume_blocker(run, checkpoint) else None,
    }


def _events_context(run: Run) -> dict:
    return {"run": run, "events": run.events.order_by("-at", "-id")[:EVENTS_SHOWN], "poll_seconds": POLL_SECONDS}


def _log_context(run: Run) -> dict:
    return {"run": run, "log_lines": tail(run, lines=LOG_LINES), "log_limit": LOG_LINES, "poll_seconds": POLL_SECONDS}


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    context = _status_context(request, run) | _events_context(run) | _log_context(run)
    return render(request, "experiments/run_detail.html", context)


@login_required
def run_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The status panel (progress, ETA, latest metrics, Cancel) alone, for the page's polling."""
    run = _visible_run(request, pk)
    return render(request, "experiments/_run_status.html", _status_context(request, run))


@login_required
def run_events(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "experiments/_run_events.html", _events_context(_visible_run(request, pk)))


@login_required
def run_log(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "experiments/_run_log.html", _log_context(_visible_run(request, pk)))


def _runs_context(request: HttpRequest) -> dict:
    runs = Run.objects.visible_to(request.user).select_related("experiment__project__team")
    active_only = request.GET.get("active") == "1"
    if active_only:
        runs = runs.active()
    runs = with_open_alerts(with_last_reward_and_entropy(runs.prefetch_related("stages")))
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    for run in page:
        stage = next((s for s in run.stages.all() if s.index == run.current_stage), None)
        rows.append(
            {
                "run": run,
                "stage": stage,
                "eta": format_duration(eta_seconds(run)) if not run.is_terminal else "",
                "reward": format_value(run.last_reward),
                "entropy": format_value(run.last_entropy),
            }
        )
    return {
        "rows": rows,
        "page": page,
        "active_only": active_only,
        "any_active": any(not row["run"].is_terminal for row in rows),
        "poll_seconds": POLL_SECONDS,
        "query": request.GET.urlencode(),
    }


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "experiments/runs_list.html", _runs_context(request))


@login_required
def run_list_table(request: HttpRequest) -> HttpResponse:
    """The runs table alone, for the list page's polling."""
    return render(request, "experiments/_runs_list_table.html", _runs_context(request))


@login_required
@require_POST
def experiment_launch(request: HttpRequest, pk: int) -> HttpResponse:
    """Launch a run of the experiment and go to its page; a viewer gets 403 from the action."""
    experiment = get_object_or_404(Experiment.objects.visible_to(request.user).select_related("project__team"), pk=pk)
    try:
        run = actions.launch_run(experiment, request.user)
    except SpecError as exc:
        messages.error(
            request, "This spec does not validate, so it cannot be launched: " + "; ".join(map(str, exc.errors))
        )
        return redirect("experiment-detail", pk=experiment.pk)
    except ValidationError as exc:  # valid, but not launchable here (e.g. a launcher not wired up yet)
        messages.error(request, "Cannot launch: " + " ".join(exc.messages))
        return redirect("experiment-detail", pk=experiment.pk)
    messages.success(request, f"Launched run #{run.pk} of {experiment.name}.")
    return redirect("run-detail", pk=run.pk)


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask the run to stop (checkpoint, then exit); it shows ``cancelling`` until its worker confirms."""
    run = _visible_run(request, pk)
    try:
        actions.cancel_run(run, request.user)
    except InvalidTransition:
        run.refresh_from_db()
        messages.warning(request, f"Run #{run.pk} is {run.get_status_display().lower()}: there is nothing to cancel.")
    else:
        messages.success(request, f"Cancelling run #{run.pk}: it checkpoints and stops.")
    return redirect("run-detail", pk=run.pk)


@login_required
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    """Resume a failed or cancelled run from its newest checkpoint; a refusal comes back as the page's message."""
    run = _visible_run(request, pk)
    try:
        actions.resume_run(run, request.user)
    except actions.NotResumable as exc:
        messages.error(request, f"Cannot resume run #{run.pk}: {exc.why}.")
    except InvalidTransition:  # another click or process moved it first
        run.refresh_from_db()
        messages.warning(request, f"Run #{run.pk} is {run.get_status_display().lower()} now: not resumed.")
    else:
        messages.success(request, f"Resuming run #{run.pk} from its newest checkpoint: it is queued again.")
    return redirect("run-detail", pk=run.pk)
