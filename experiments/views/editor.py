"""The experiment editor: new from a recipe template, or "duplicate and edit" an experiment (for ablations).

Both pages are the same form (``experiments.forms.editor.SpecEditor``). Saving goes through
``experiments.actions.create_experiment_from_spec``, so the rules are the trainer's own spec contract plus the
actions' (a viewer cannot create, a name is unique in its project). A POST with ``row_op`` only changes the
rows of the data mix or the stage table; from htmx it answers with that table alone.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render

from experiments.actions import create_experiment_from_spec, require_write
from experiments.forms.editor import SpecEditor, unique_name
from experiments.forms.recipes import recipe, recipes
from experiments.management.commands.load_examples import EXAMPLE_TAG
from experiments.models import Experiment, Project
from or1_train.spec import SpecError

ROW_TEMPLATES = {"sources": "experiments/editor_sources.html", "stages": "experiments/editor_stages.html"}


@login_required
def experiment_new(request: HttpRequest, project_pk: int) -> HttpResponse:
    """Without ``?template=``, a page to choose a recipe or an experiment to start from; with it, the editor."""
    project = get_object_or_404(Project.objects.visible_to(request.user).select_related("team"), pk=project_pk)
    require_write(project.team, request.user)
    name = request.GET.get("template", "")
    if not name:
        experiments = project.experiments.order_by("name")
        return render(
            request,
            "experiments/editor_start.html",
            {"project": project, "recipes": recipes(), "experiments": experiments},
        )
    chosen = recipe(name)
    if chosen is None:
        raise Http404(f"no recipe template named {name!r}")
    return _edit(request, project=project, base=chosen.spec, parent=None, tags=(), origin=f"the {chosen.title} recipe")


@login_required
def experiment_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Experiment.objects.visible_to(request.user).select_related("project__team"), pk=pk)
    require_write(source.project.team, request.user)
    return _edit(
        request,
        project=source.project,
        base=source.spec,
        parent=source,
        tags=source.tags,
        origin=f"experiment {source.name}",
    )


def _edit(
    request: HttpRequest,
    *,
    project: Project,
    base: dict[str, Any],
    parent: Experiment | None,
    tags,
    origin: str,
) -> HttpResponse:
    existing = set(project.experiments.values_list("name", flat=True))
    if request.method != "POST":
        spec = dict(base, name=unique_name(existing, str(base.get("name") or "")))
        editor = SpecEditor(project.team, spec=spec, tags=[t for t in tags if t != EXAMPLE_TAG])
        return _render(request, editor, project, parent, origin)

    editor = SpecEditor(project.team, data=request.POST)
    row_op = request.POST.get("row_op")
    if row_op:
        try:
            kind = editor.apply_row_op(row_op, request.POST.get("registered_source"))
        except ValidationError as exc:
            return HttpResponseBadRequest(" ".join(exc.messages))
        if request.headers.get("HX-Request") == "true":
            return render(request, ROW_TEMPLATES[kind], {"editor": editor})
        return _render(request, editor, project, parent, origin)

    spec = editor.clean_spec(base)
    if spec is not None:
        try:
            experiment = create_experiment_from_spec(
                project=project, user=request.user, spec=spec, tags=editor.tags, parent=parent
            )
        except SpecError as exc:  # the spec contract changed between the two validations
            editor.add_errors(exc.errors)
        except ValidationError as exc:
            editor.add_validation_error(exc)
        else:
            messages.success(request, f"Saved experiment {experiment.name}. Launch it when you are ready.")
            return redirect("experiment-detail", pk=experiment.pk)
    return _render(request, editor, project, parent, origin)


def _render(
    request: HttpRequest, editor: SpecEditor, project: Project, parent: Experiment | None, origin: str
) -> HttpResponse:
    return render(
        request,
        "experiments/editor.html",
        {"editor": editor, "project": project, "parent": parent, "origin": origin},
    )
