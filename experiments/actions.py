"""Operations that change several rows or enforce a rule across models.

Views, the REST API and management commands call these and never each other, so a rule (a spec is validated
by the trainer's own contract, a viewer cannot create anything, a run freezes its spec) is written once.

Errors:
    ``or1_train.spec.SpecError``  the spec is invalid; ``.errors`` lists each ``FieldError(path, message)``
    ``PermissionDenied``          the user's role in the team does not allow the change
    ``ValidationError``           any other problem, keyed by the form field it concerns
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from experiments.models import Experiment, Membership, Project, Run, RunEvent, RunStatus, StageRecord, Team
from or1_train.spec import RunSpec, parse_spec


def require_write(team: Team, user) -> None:
    if not team.can_write(user):
        raise PermissionDenied(f"{user} may not change {team} (needs the owner, admin or member role)")


def add_member(team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    """Make ``user`` a member of ``team`` with ``role``, or change the role of an existing member."""
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


def create_experiment_from_spec(
    *,
    project: Project,
    user,
    spec: dict[str, Any],
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    parent: Experiment | None = None,
) -> Experiment:
    """Validate ``spec`` with the trainer's contract and save it as a new experiment in ``project``.

    The name defaults to the spec's ``name`` and the description to the spec's ``description``. Raises
    SpecError naming each invalid field (``stages[1].max_response_tokens: ...``), PermissionDenied for a
    viewer or an outsider, and ValidationError when the project already has an experiment of that name.
    """
    require_write(project.team, user)
    parsed = parse_spec(spec)
    name = (name or parsed.name).strip()
    if Experiment.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": f"{project} already has an experiment named {name!r}"})
    return Experiment.objects.create(
        project=project,
        name=name,
        description=parsed.description if description is None else description,
        spec=spec,
        tags=sorted(set(tags)),
        parent=parent,
        created_by=user,
    )


def duplicate_experiment(
    source: Experiment, *, user, name: str, spec: dict[str, Any] | None = None, project: Project | None = None
) -> Experiment:
    """'Duplicate and edit': a new experiment from ``source`` (perhaps with an edited spec), linked to it."""
    return create_experiment_from_spec(
        project=project or source.project,
        user=user,
        spec=source.spec if spec is None else spec,
        name=name,
        description=source.description,
        tags=source.tags,
        parent=source,
    )


@transaction.atomic
def create_run(experiment: Experiment, *, user) -> Run:
    """A queued run of ``experiment`` with its spec frozen (defaults filled in) and its stages planned.

    Handing the run to a launcher is the caller's next step (after commit), so that a worker never sees a
    run whose row is not yet visible.
    """
    require_write(experiment.project.team, user)
    parsed: RunSpec = parse_spec(experiment.spec)
    frozen = parsed.model_dump(mode="json")
    run = Run.objects.create(
        experiment=experiment,
        created_by=user,
        launcher=frozen["resources"]["launcher"],
        spec_as_launched=frozen,
        total_steps=parsed.total_steps,
    )
    run.run_dir = str(Path(settings.OR1_RUNS_DIR) / f"run-{run.pk}")
    run.save(update_fields=["run_dir"])
    start = 0
    for index, stage in enumerate(frozen["stages"]):
        StageRecord.objects.create(
            run=run,
            index=index,
            name=stage["name"] or f"stage {index}",
            max_response_tokens=stage["max_response_tokens"],
            start_step=start,
            end_step=start + stage["steps"],
        )
        start += stage["steps"]
    run.events.create(
        kind=RunEvent.Kind.STATUS,
        message=f"{RunStatus.QUEUED} by {user}",
        data={"to": RunStatus.QUEUED, "total_steps": run.total_steps},
    )
    return run
