"""The checkpoint registry in the browser: a project's checkpoints with their scores and HF-format path, a
checkpoint's page, and the downloads of its manifest and files (for anyone who may read the checkpoint).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from experiments import access, registry
from experiments.models import Checkpoint, Project, Run


def checkpoint_download(checkpoint: Checkpoint, name: str) -> HttpResponse:
    if name == registry.MANIFEST:
        return JsonResponse(checkpoint.manifest, json_dumps_params={"indent": 2},
                            headers={"Content-Disposition": 'attachment; filename="manifest.json"'})
    found = registry.resolve_file(checkpoint, name)
    if found is None:
        raise Http404("the checkpoint has no such file")
    return FileResponse(found.open("rb"), as_attachment=True, filename=found.name)


@login_required
def checkpoint_registry(request: HttpRequest, project_pk: int) -> HttpResponse:
    """A project's checkpoints with step, stage, eval scores and the HF-format path (its team only)."""
    project = get_object_or_404(Project.objects.visible_to(request.user).select_related("team"), pk=project_pk)
    checkpoints = registry.with_scores(
        Checkpoint.objects.filter(run__experiment__project=project).order_by("-created_at", "-id")
    )[:500]
    rows = [{"checkpoint": c, "scores": registry.scores(c), "hf_path": registry.hf_path(c)} for c in checkpoints]
    return render(request, "collab/checkpoints.html", {"project": project, "rows": rows})


@login_required
def checkpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    checkpoint = get_object_or_404(registry.with_scores(access.readable_checkpoints(request.user)), pk=pk)
    run: Run = checkpoint.run
    own = run.experiment.project.team_id in access.team_ids(request.user)
    return render(
        request,
        "collab/checkpoint_detail.html",
        {
            "checkpoint": checkpoint,
            "run": run,
            "own": own,
            "scores": registry.scores(checkpoint),
            "hf_path": registry.hf_path(checkpoint),
            "files": registry.listed_files(checkpoint),
            "can_share": own and access.can_manage(run.experiment.project.team_id, request.user, run.created_by_id),
            "can_evaluate": own and access.can_write(run.experiment.project.team_id, request.user),
        },
    )


@login_required
def checkpoint_file(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    checkpoint = get_object_or_404(access.readable_checkpoints(request.user), pk=pk)
    return checkpoint_download(checkpoint, name)


