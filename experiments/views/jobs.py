"""Pages of evaluation and difficulty jobs: the "Evaluate" form (from a checkpoint's page or the leaderboard),
a dataset source's page with its "Estimate difficulty" form, each job's page with its status (polled while it
runs, reloaded once when it ends) and its Cancel button, the pass-count histogram, and "Create filtered source".

The work is ``experiments.jobs``, as for the API. Jobs of another team are 404; a viewer reads them and gets
403 for anything that starts or registers something.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from experiments import access, jobs
from experiments.forms.jobs import DifficultyJobForm, EvaluationJobForm, apply_errors
from experiments.models import DatasetSource, DifficultyJob, EvaluationJob, JobStatus

POLL_SECONDS = 3
_CANCEL_URLS = {EvaluationJob.kind: "evaluation-job-cancel", DifficultyJob.kind: "difficulty-job-cancel"}
_PAGES = {EvaluationJob.kind: "evaluation-job", DifficultyJob.kind: "difficulty-job"}


def _submit(form, submit, **extra):
    """``submit(**form values)``, or None with the errors put on the form's fields."""
    if not form.is_valid():
        return None
    values = {k: v for k, v in form.cleaned_data.items() if v is not None}
    try:
        return submit(**values, **extra)
    except ValidationError as exc:
        apply_errors(form, exc)
        return None


@login_required
def evaluation_new(request: HttpRequest) -> HttpResponse:
    """Evaluate a checkpoint (``?checkpoint=<id>`` preselects one) or an HF model on the team's eval sets."""
    initial = {}
    if request.GET.get("checkpoint", "").isdigit():
        checkpoint = get_object_or_404(access.readable_checkpoints(request.user), pk=request.GET["checkpoint"])
        if not access.can_write(checkpoint.run.experiment.project.team_id, request.user):
            raise PermissionDenied("only members of the checkpoint's team evaluate it")
        initial["checkpoint"] = checkpoint.pk
    form = EvaluationJobForm(request.POST or None, initial=initial, user=request.user)
    if request.method == "POST":
        job = _submit(form, lambda **values: jobs.submit_evaluation(request.user, **values))
        if job is not None:
            messages.success(request, f"Evaluation #{job.pk} queued.")
            return redirect("evaluation-job", job.pk)
    return render(request, "experiments/evaluation_new.html", {"form": form})


def _job_page(request: HttpRequest, template: str, job, extra: dict | None = None) -> HttpResponse:
    """A job's page, or (for the page's polling) its status panel; a poll that finds the job ended reloads
    the page once, so its results appear without a script of their own."""
    context = {"job": job, "poll_seconds": POLL_SECONDS, "can_write": access.can_write(job.team_id, request.user),
               "cancel_url": _CANCEL_URLS[job.kind] if jobs.can_cancel(job, request.user) else None}
    if request.headers.get("HX-Request"):
        response = render(request, "experiments/_job_status.html", context)
        if job.is_terminal:
            response["HX-Refresh"] = "true"
        return response
    return render(request, template, context | (extra or {}))


@login_required
def evaluation_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(EvaluationJob.objects.visible_to(request.user).select_related("checkpoint__run"), pk=pk)
    results = [{"result": r, "avg_percent": 100 * r.avg_at_k,
                "pass_percent": None if r.pass_at_k is None else 100 * r.pass_at_k}
               for r in job.results.order_by("benchmark")]
    return _job_page(request, "experiments/evaluation_job.html", job,
                     {"results": results, "eval_sets": job.eval_sets.all()})


@login_required
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A dataset source: what it is, its difficulty jobs, and the form that starts one (members)."""
    source = get_object_or_404(DatasetSource.objects.visible_to(request.user).select_related("team"), pk=pk)
    can_write = access.can_write(source.team_id, request.user)
    form = DifficultyJobForm(request.POST or None, user=request.user, source=source) if can_write else None
    if request.method == "POST":
        if form is None:
            raise PermissionDenied("viewers only read the team's datasets")
        job = _submit(form, lambda **values: jobs.submit_difficulty(request.user, source=source, **values))
        if job is not None:
            messages.success(request, f"Difficulty estimation #{job.pk} queued.")
            return redirect("difficulty-job", job.pk)
    context = {"source": source, "form": form, "jobs": source.difficulty_jobs.select_related("created_by")[:50]}
    return render(request, "experiments/dataset_detail.html", context)


@login_required
def difficulty_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(
        DifficultyJob.objects.visible_to(request.user).select_related("source", "filtered_source"), pk=pk
    )
    bars = {"counts": [int(c) for c in job.histogram], "problems": list(job.histogram.values()), "n": job.n}
    return _job_page(request, "experiments/difficulty_job.html", job,
                     {"bars": bars, "suggested_name": jobs.filtered_source_name(job)})


@login_required
@require_POST
def difficulty_create_source(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(DifficultyJob.objects.visible_to(request.user).select_related("source"), pk=pk)
    try:
        source = jobs.create_filtered_source(job, request.user, request.POST.get("name", ""))
    except ValidationError as exc:
        for problems in exc.message_dict.values():
            for problem in problems:
                messages.error(request, problem)
        return redirect("difficulty-job", job.pk)
    messages.success(request, f"Registered {source.name} ({source.num_prompts} problems) for {source.team}.")
    return redirect("dataset-detail", source.pk)


def _cancel(request: HttpRequest, model, pk: int) -> HttpResponse:
    """Cancel the job (its page's Cancel button); a refusal comes back as the page's message."""
    job = get_object_or_404(model.objects.visible_to(request.user), pk=pk)
    try:
        job = jobs.cancel_job(job, request.user)
    except jobs.NotCancellable as exc:
        messages.warning(request, f"Not cancelled: {exc.why}.")
    else:
        done = job.status == JobStatus.CANCELLED
        messages.success(request, f"Cancelled {job.label}." if done else f"Cancelling {job.label}: stopping it.")
    return redirect(_PAGES[model.kind], job.pk)


@login_required
@require_POST
def evaluation_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _cancel(request, EvaluationJob, pk)


@login_required
@require_POST
def difficulty_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _cancel(request, DifficultyJob, pk)
