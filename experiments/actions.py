"""Operations that change several rows or enforce a rule across models.

Views, the REST API and management commands call these and never each other, so a rule (a spec is validated
by the trainer's own contract, a viewer cannot create anything, a run freezes its spec) is written once.

Launching: ``launch_run`` creates the run and, once the transaction commits, sends the launch task to a worker
host's queue (``workers/tasks.py``); ``cancel_run``, ``resume_run`` and ``relaunch_run`` go to the queue of the
host the run is on. Celery only carries the work: the Run row is the source of truth, moved with
``Run.transition_to``.

Errors:
    ``or1_train.spec.SpecError``  the spec is invalid; ``.errors`` lists each ``FieldError(path, message)``
    ``PermissionDenied``          the user's role in the team does not allow the change
    ``InvalidTransition``         the run's status does not allow it (``NotResumable`` says why in words)
    ``ValidationError``           any other problem, keyed by the form field it concerns
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from experiments.access import can_manage
from experiments.models import (
    Checkpoint,
    Experiment,
    InvalidTransition,
    Membership,
    Project,
    Run,
    RunEvent,
    RunStatus,
    StageRecord,
    Team,
)
from experiments.models.audit import AuditEntry, record
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
def create_run(experiment: Experiment, *, user, spec: dict[str, Any] | None = None) -> Run:
    """A queued run of ``experiment`` (or of ``spec``) with its spec frozen (defaults filled in) and its
    stages planned.

    Handing the run to a launcher is the caller's next step (after commit), so that a worker never sees a
    run whose row is not yet visible; ``launch_run`` does both.
    """
    require_write(experiment.project.team, user)
    parsed: RunSpec = parse_spec(experiment.spec if spec is None else spec)
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


#: Launchers this platform can start runs with, and the Celery tasks that start and cancel each.
LAUNCH_TASKS = {Run.Launcher.LOCAL: "workers.tasks.launch", Run.Launcher.SLURM: "workers.tasks.launch_slurm"}
CANCEL_TASKS = {Run.Launcher.LOCAL: "workers.tasks.cancel", Run.Launcher.SLURM: "workers.tasks.cancel_slurm"}


def cluster_names(team: Team) -> list[str]:
    from experiments.models import SlurmCluster

    return sorted(SlurmCluster.objects.filter(team=team).values_list("name", flat=True))


def cluster_offer(team: Team) -> str:
    """What to choose instead, in words: the team's clusters, or that it has none."""
    names = cluster_names(team)
    return f"choose one of {', '.join(names)}" if names else f"{team} has no Slurm cluster registered yet"


def require_cluster(team: Team, spec: RunSpec) -> None:
    """A Slurm run must name one of its team's registered clusters (``resources.cluster``)."""
    name = spec.resources.cluster
    if name in cluster_names(team):
        return
    offer = cluster_offer(team)
    raise ValidationError(
        {"resources.cluster": f"no Slurm cluster {name!r} in {team}: {offer}" if name else f"is required: {offer}"}
    )


def launch_run(experiment: Experiment, user, *, spec: dict[str, Any] | None = None) -> Run:
    """Create a queued run of ``experiment`` (or of ``spec``, e.g. the editor's unsaved edits) and launch it.

    The spec is validated by the trainer's contract and frozen with every default; the environment record
    (package versions, host, GPUs) is the web host's until the worker replaces it with its own. The launch
    task is sent when the transaction commits, to the local launch queue (``OR1_LOCAL_LAUNCH_QUEUE``), or for
    a Slurm run (which must name one of the team's clusters) to the Slurm queue (``slurm_queue()``). The
    run's ingestion token is issued by that task on the worker, so it never travels through the broker.
    """
    from workers.environment import environment_record

    parsed = parse_spec(experiment.spec if spec is None else spec)
    launcher = parsed.resources.launcher
    if launcher not in LAUNCH_TASKS:
        raise ValidationError({"resources.launcher": f"this platform cannot launch {launcher!r} runs"})
    if launcher == Run.Launcher.SLURM:
        require_cluster(experiment.project.team, parsed)
    with transaction.atomic():
        run = create_run(experiment, user=user, spec=spec)
        run.environment = environment_record()
        run.save(update_fields=["environment"])
        _audit(run, user, AuditEntry.Action.LAUNCH)
        transaction.on_commit(lambda: _send(LAUNCH_TASKS[launcher], run, worker_queue(run)))
    return run


def cancel_run(run: Run, user) -> Run:
    """Stop a run: a queued one is cancelled at once; a started one moves to ``cancelling`` and its host
    sends the trainer SIGTERM (checkpoint and exit), then SIGKILL after ``OR1_CANCEL_GRACE_S``.

    Raises InvalidTransition for a run that has already finished (or is already cancelling).
    """
    team = run.experiment.project.team
    if not can_manage(team, user, run.created_by_id):
        raise PermissionDenied(f"{user} may not cancel {run} (members cancel their own runs, admins any)")
    with transaction.atomic():
        if run.status == RunStatus.QUEUED:
            run.transition_to(RunStatus.CANCELLED, reason=f"cancelled by {user} before it started")
        else:
            run.transition_to(RunStatus.CANCELLING, reason=f"cancel requested by {user}")
            transaction.on_commit(lambda: _send(CANCEL_TASKS[run.launcher], run, worker_queue(run)))
        _audit(run, user, AuditEntry.Action.CANCEL)
    return run


class NotResumable(InvalidTransition):
    """A resume the run's state does not allow: it has not ended, it succeeded, or it has no checkpoint."""

    def __init__(self, run: Run, why: str):
        super().__init__(run.pk, run.status, RunStatus.QUEUED, why)
        self.why = why
        self.args = (f"run {run.pk} cannot be resumed: {why}",)


RESUMABLE_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


def resume_blocker(run: Run, checkpoint: Checkpoint | None) -> str:
    """Why ``run`` cannot be resumed from ``checkpoint`` (its newest registered one), or "" when it can."""
    if run.status == RunStatus.SUCCEEDED:
        return "it succeeded: it has no steps left to run"
    if run.status not in RESUMABLE_STATUSES:
        return f"it is {run.get_status_display().lower()}; only a failed or cancelled run can be resumed"
    if checkpoint is None:
        return "it has no checkpoint to resume from (it ended before saving one): launch the experiment again"
    return ""


def newest_checkpoint(run: Run) -> Checkpoint | None:
    return run.checkpoints.order_by("-step").first()


def resume_run(run: Run, user) -> Run:
    """Continue a failed or cancelled run from its newest checkpoint: back to the queue (``restarts`` + 1, its
    end cleared) and launched again with ``--resume`` where its checkpoints are, as a lost run is
    (``relaunch_run``); the trainer picks the newest valid checkpoint in the run directory and rewrites the
    steps after it, so every step's metrics are there once. Members resume their own runs, admins any.

    Raises PermissionDenied, and NotResumable when the run has not ended, succeeded, or has no checkpoint.
    """
    team = run.experiment.project.team
    if not can_manage(team, user, run.created_by_id):
        raise PermissionDenied(f"{user} may not resume {run} (members resume their own runs, admins any)")
    checkpoint = newest_checkpoint(run)
    if why := resume_blocker(run, checkpoint):
        raise NotResumable(run, why)
    with transaction.atomic():
        relaunch_run(run, reason=f"resumed by {user} from checkpoint step {checkpoint.step}")
        _audit(run, user, AuditEntry.Action.RESUME, checkpoint_step=checkpoint.step)
    return run


def _audit(run: Run, user, action: str, **detail) -> None:
    record(
        team=run.experiment.project.team,
        actor=user,
        action=action,
        target_type="run",
        target_id=run.pk,
        target_label=f"run {run.pk} of {run.experiment.name}",
        **detail,
    )


def relaunch_run(run: Run, *, reason: str) -> Run:
    """Put a run back in the queue (``restarts`` + 1) and launch it again with ``--resume`` on the same host,
    whose run directory holds its checkpoints (a Slurm run: a new job on the same cluster, in the same run
    directory on its shared filesystem): a run whose trainer was lost (the reconcilers), or an ended run a
    person resumes (``resume_run``)."""
    with transaction.atomic():
        run.transition_to(RunStatus.QUEUED, reason=reason)
        transaction.on_commit(lambda: _send(LAUNCH_TASKS[run.launcher], run, worker_queue(run), resume=True))
    return run


def slurm_queue() -> str:
    """Where Slurm runs are submitted, cancelled and followed: ``OR1_SLURM_QUEUE``, else the local launch
    queue. Its workers need slurmrestd on the network and the clusters' runs directories mounted."""
    return settings.OR1_SLURM_QUEUE or settings.OR1_LOCAL_LAUNCH_QUEUE


def worker_queue(run: Run) -> str:
    """The Celery queue of the host a run was started on (the launch queue before it has started); for a
    Slurm run, the Slurm queue."""
    if run.launcher == Run.Launcher.SLURM:
        return slurm_queue()
    return run.environment.get("worker_queue") or settings.OR1_LOCAL_LAUNCH_QUEUE


def _send(task: str, run: Run, queue: str, **kwargs) -> None:
    from or1platform.celery import app

    app.send_task(task, args=[run.pk], kwargs=kwargs, queue=queue)
