"""Evaluation and difficulty jobs: submitted from the browser and the API, run by a worker.

``submit_evaluation`` and ``submit_difficulty`` check the roles, build the run spec that the trainer's CLI
will be handed and validate it with the trainer's own contract now, so that a k below 1, samples below k or
a response length beyond the model's window is a field error in the form or the API, not a job that fails
an hour later. Where it runs is the job's launcher: ``local`` sends it to a worker host's queue
(``OR1_LOCAL_LAUNCH_QUEUE``, where the GPUs are; ``workers/eval_jobs.py`` runs it), ``slurm`` to the Slurm
queue, whose worker submits it to one of the team's clusters (``workers/slurm_eval_jobs.py``); the message goes
once the transaction commits. Starting and cancelling a job are in the team's audit log.

``cancel_job`` stops a job, with the roles of runs (members their own jobs, admins any): a queued job is
cancelled at once; a running one goes ``cancelling``, and its local worker stops the job's process group (it
watches the row), or the Slurm worker cancels its Slurm job.

The spec: for a checkpoint, its run's frozen spec (the prompts, verifier settings and lengths it trained
with) with ``model.path`` at the checkpoint's HF directory and the evaluation section pointed at the chosen
sets; for any other model, a spec of that model alone (``model_spec``).

``create_filtered_source`` registers what a difficulty job kept (problems solved 1..n-1 times of n) as a new
dataset source of the team, the filter OR1's released scripts apply (dossier §4.2).

Errors follow ``experiments.actions``: PermissionDenied for a role that may not, ValidationError keyed by the
form field (the API's field names are the same).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from experiments import access, registry
from experiments.actions import cluster_offer, slurm_queue
from experiments.models import (
    Checkpoint,
    DatasetSource,
    DifficultyJob,
    EvaluationJob,
    InvalidTransition,
    JobStatus,
    Run,
    SlurmCluster,
    Team,
)
from experiments.models.audit import AuditEntry, record
from or1_train.spec import SpecError, parse_spec

#: the paper's evaluation length (32K response tokens), for a model that is no checkpoint of a run
DEFAULT_RESPONSE_TOKENS = 32768
DEFAULT_PROMPT_TOKENS = 2048
#: estimate-difficulty reads what read_source reads (no date-windowed LiveCodeBench copies)
DIFFICULTY_FORMATS = ("auto", "jsonl", "parquet", "hf", "or1")
#: spec paths -> the form and API field that sets them
SPEC_FIELDS = {
    "model.path": "model_path",
    "model.dtype": "dtype",
    "rollout.engine": "engine",
    "evaluation.k": "k",
    "evaluation.samples": "samples",
    "evaluation.temperature": "temperature",
    "evaluation.max_response_tokens": "max_response_tokens",
    "stages[0].max_response_tokens": "max_response_tokens",
}
#: the local worker's task of each kind of job (a Slurm job is submitted by ``workers.eval_jobs.submit_slurm``)
LOCAL_TASKS = {EvaluationJob.kind: "workers.eval_jobs.evaluate", DifficultyJob.kind: "workers.eval_jobs.difficulty"}


def eval_spec(spec: dict, sources: list[DatasetSource], *, k: int, temperature: float, samples: int | None = None,
              max_response_tokens: int | None = None) -> dict:
    """``spec`` with ``evaluation`` pointed at ``sources`` (each set named after its source)."""
    spec = copy.deepcopy(spec)
    evaluation = dict(spec.get("evaluation") or {})
    evaluation.update(
        sets=[{"name": s.name, "path": s.path, "format": s.format} for s in sources], k=k, temperature=temperature,
        samples=samples,
    )
    if max_response_tokens:
        evaluation["max_response_tokens"] = max_response_tokens
    spec["evaluation"] = evaluation
    return spec


def model_config(model_path: str) -> dict:
    """The model's config.json when this host can read it (a hub id or a worker-only path: {})."""
    try:
        return json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def model_spec(model_path: str, *, dtype: str = "", engine: str = "", max_response_tokens: int | None = None,
               data_path: str | None = None) -> dict:
    """A spec of a model alone: dtype from the job, else the model's config.json, else bfloat16; one stage of
    ``max_response_tokens`` (default 32K) after prompts of up to 2048 tokens (half a smaller model's window).
    A spec needs a data section and training sizes; evaluating and estimating read neither."""
    config = model_config(model_path)
    window = config.get("max_position_embeddings") if isinstance(config.get("max_position_embeddings"), int) else None
    own_dtype = config.get("dtype", config.get("torch_dtype"))  # transformers >= 4.56 writes "dtype"
    own_dtype = own_dtype if own_dtype in ("float32", "bfloat16", "float16") else None
    model = {"path": model_path, "dtype": dtype or own_dtype or "bfloat16"}
    if window:
        model["max_positions"] = window
    prompt_tokens = min(DEFAULT_PROMPT_TOKENS, window // 2) if window else DEFAULT_PROMPT_TOKENS
    stage = {"name": "eval", "steps": 1, "max_prompt_tokens": prompt_tokens,
             "max_response_tokens": max_response_tokens or DEFAULT_RESPONSE_TOKENS,
             "rollout_batch": 1, "mini_batch": 1, "group_size": 2}  # training sizes: required, never used
    return {
        "name": f"model {Path(model_path).name or model_path}",
        "model": model,
        "data": {"sources": [{"name": "data", "path": data_path or model_path}]},
        "stages": [stage],
        "rollout": {"engine": engine or "vllm"},
    }


def checkpoint_spec(checkpoint: Checkpoint, *, dtype: str = "", engine: str = "") -> dict:
    """The checkpoint's run spec with the model at the checkpoint's HF directory."""
    spec = copy.deepcopy(checkpoint.run.spec_as_launched)
    spec["model"] = {**spec["model"], "path": registry.hf_path(checkpoint), "bootstrap": None}
    if dtype:
        spec["model"]["dtype"] = dtype
    if engine:
        spec["rollout"] = {**spec.get("rollout", {}), "engine": engine}
    return spec


def _validated(spec: dict) -> dict:
    """The spec frozen with every default, or ValidationError keyed by the job's fields."""
    try:
        return parse_spec(spec).model_dump(mode="json")
    except SpecError as exc:
        problems: dict[str, list[str]] = {}
        for error in exc.errors:
            field = SPEC_FIELDS.get(error.path, "__all__")
            problems.setdefault(field, []).append(error.message if field != "__all__" else str(error))
        raise ValidationError(problems) from None


def _team_of(user, checkpoint: Checkpoint | None, team: Team | None) -> Team:
    """The checkpoint's team, or the one named for a model path; the user must be able to write there."""
    if checkpoint is not None:
        team = checkpoint.run.experiment.project.team
    if team is None:
        raise ValidationError({"team": "name the team that runs the job (its eval sets and its workers)"})
    if not access.can_write(team, user):
        raise PermissionDenied(f"{user} may not start jobs of {team} (viewers only read)")
    return team


def _model_of(checkpoint: Checkpoint | None, model_path: str) -> str:
    if checkpoint is not None and model_path:
        raise ValidationError({"model_path": "give a checkpoint or a model path, not both"})
    if checkpoint is None and not model_path.strip():
        raise ValidationError({"model_path": "give a checkpoint or a model path (an HF model directory)"})
    return registry.hf_path(checkpoint) if checkpoint is not None else model_path.strip()


def _placement(team: Team, spec: dict, launcher: str, cluster: SlurmCluster | None, gpus: int | None) -> dict:
    """Where the job runs, checked: the launcher, and for Slurm one of the team's clusters and the GPUs to ask
    for (default: the spec's tensor-parallel size with vLLM, none with transformers)."""
    launcher = launcher or Run.Launcher.LOCAL
    if launcher not in Run.Launcher.values:
        raise ValidationError({"launcher": f"must be one of {', '.join(Run.Launcher.values)}"})
    if launcher == Run.Launcher.LOCAL:
        if cluster is not None:
            raise ValidationError({"cluster": "only for the Slurm launcher"})
        if gpus is not None:
            raise ValidationError({"gpus": "only for the Slurm launcher: a local job uses its worker's GPUs"})
        return {"launcher": launcher, "cluster": None, "gpus": None}
    if cluster is None or cluster.team_id != team.pk:
        named = "is required for the Slurm launcher" if cluster is None else f"{cluster.name} is not one of {team}'s"
        raise ValidationError({"cluster": f"{named}: {cluster_offer(team)}"})
    rollout = spec.get("rollout", {})
    if gpus is None:
        gpus = rollout.get("tensor_parallel_size", 1) if rollout.get("engine") == "vllm" else 0
    return {"launcher": launcher, "cluster": cluster, "gpus": gpus}


def queue_of(job) -> str:
    return slurm_queue() if job.launcher == Run.Launcher.SLURM else settings.OR1_LOCAL_LAUNCH_QUEUE


def send(job) -> None:
    """Send the job's message by task name (the web tier never imports the workers): to a local worker that
    runs it, or to the Slurm worker that submits it."""
    from or1platform.celery import app

    if job.launcher == Run.Launcher.SLURM:
        app.send_task("workers.eval_jobs.submit_slurm", args=[job.kind, job.pk], queue=queue_of(job))
    else:
        app.send_task(LOCAL_TASKS[job.kind], args=[job.pk], queue=queue_of(job))


def _started(job, user) -> None:
    """Audit the new job and send it once the transaction commits."""
    _audit(job, user, AuditEntry.Action.LAUNCH, launcher=job.launcher,
           **({"cluster": job.cluster.name} if job.cluster else {}))
    transaction.on_commit(lambda: send(job))


def _audit(job, user, action: str, **detail) -> None:
    record(team=job.team, actor=user, action=action, target_type=f"{job.kind} job", target_id=job.pk,
           target_label=str(job), **detail)


@transaction.atomic
def submit_evaluation(user, *, eval_sets: list[DatasetSource], k: int, temperature: float = 1.0,
                      samples: int | None = None, max_response_tokens: int | None = None,
                      checkpoint: Checkpoint | None = None, model_path: str = "", team: Team | None = None,
                      engine: str = "", dtype: str = "", launcher: str = "", cluster: SlurmCluster | None = None,
                      gpus: int | None = None) -> EvaluationJob:
    """Queue avg@k / pass@k of a checkpoint (or of the model at ``model_path``) on the team's ``eval_sets``."""
    path = _model_of(checkpoint, model_path)
    team = _team_of(user, checkpoint, team)
    if not eval_sets:
        raise ValidationError({"eval_sets": "choose at least one eval set"})
    foreign = sorted(s.name for s in eval_sets if s.team_id != team.pk)
    if foreign:
        raise ValidationError({"eval_sets": f"not eval sets of {team}: {', '.join(foreign)}"})
    sets = sorted(set(eval_sets), key=lambda s: s.pk)
    base = (checkpoint_spec(checkpoint, dtype=dtype, engine=engine) if checkpoint is not None
            else model_spec(path, dtype=dtype, engine=engine, max_response_tokens=max_response_tokens,
                            data_path=sets[0].path))
    spec = _validated(eval_spec(base, sets, k=k, temperature=temperature, samples=samples,
                                max_response_tokens=max_response_tokens))
    job = EvaluationJob.objects.create(
        team=team, created_by=user, checkpoint=checkpoint, model_path=path, engine=engine, dtype=dtype, spec=spec,
        k=k, samples=spec["evaluation"]["samples"] or k, temperature=temperature,
        max_response_tokens=max_response_tokens, **_placement(team, spec, launcher, cluster, gpus),
    )
    job.eval_sets.set(sets)
    _started(job, user)
    return job


@transaction.atomic
def submit_difficulty(user, *, source: DatasetSource, n: int = 16, temperature: float = 1.0,
                      max_tokens: int | None = None, limit: int | None = None, model_name: str = "",
                      checkpoint: Checkpoint | None = None, model_path: str = "", engine: str = "",
                      dtype: str = "", launcher: str = "", cluster: SlurmCluster | None = None,
                      gpus: int | None = None) -> DifficultyJob:
    """Queue `or1-train estimate-difficulty` of a model on ``source``: n samples a problem, pass counts kept."""
    if not access.can_write(source.team, user):
        raise PermissionDenied(f"{user} may not start jobs of {source.team} (viewers only read)")
    if checkpoint is not None and checkpoint.run.experiment.project.team_id != source.team_id:
        raise ValidationError({"checkpoint": f"not a checkpoint of {source.team}"})
    path = _model_of(checkpoint, model_path)
    if n < 2:
        raise ValidationError({"n": "must be at least 2: with one sample no problem is solved 1..n-1 times"})
    if source.format not in DIFFICULTY_FORMATS:
        raise ValidationError({"source": f"{source.get_format_display()} sources cannot be estimated; "
                                         f"register the problems as JSONL, Parquet or OR1 data"})
    base = (checkpoint_spec(checkpoint, dtype=dtype, engine=engine) if checkpoint is not None
            else model_spec(path, dtype=dtype, engine=engine, max_response_tokens=max_tokens, data_path=source.path))
    try:
        spec = _validated(base)
    except ValidationError as exc:  # the only length a difficulty job sets is max_tokens (--max-tokens)
        raise ValidationError({("max_tokens" if k == "max_response_tokens" else k): v
                               for k, v in exc.message_dict.items()}) from None
    default_name = f"run-{checkpoint.run_id}-step-{checkpoint.step}" if checkpoint else Path(path).name or path
    job = DifficultyJob.objects.create(
        team=source.team, created_by=user, checkpoint=checkpoint, model_path=path, engine=engine, dtype=dtype,
        spec=spec, source=source, n=n, temperature=temperature, max_tokens=max_tokens, limit=limit,
        model_name=(model_name or default_name).strip()[:200], **_placement(source.team, spec, launcher, cluster, gpus),
    )
    _started(job, user)
    return job


class NotCancellable(InvalidTransition):
    """A cancel the job's state does not allow: it has ended, or is already being cancelled."""

    def __init__(self, job, why: str):
        super().__init__(job.pk, job.status, JobStatus.CANCELLED, why)
        self.why = why
        self.args = (f"{job.label} cannot be cancelled: {why}",)


def can_cancel(job, user) -> bool:
    return access.can_manage(job.team_id, user, job.created_by_id)


def cancel_job(job, user):
    """Cancel a queued job at once, or ask a running one to stop (``cancelling``): its local worker stops the
    job's process group, or the Slurm worker cancels its Slurm job. Members cancel their own jobs, admins any.

    Raises PermissionDenied, and NotCancellable (a 409 in the API) for a job that has ended or is cancelling.
    """
    if not can_cancel(job, user):
        raise PermissionDenied(f"{user} may not cancel {job.label} (members cancel their own jobs, admins any)")
    model = type(job)
    with transaction.atomic():
        if model.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                status=JobStatus.CANCELLED, status_reason=f"cancelled by {user} before it started",
                finished_at=timezone.now()):
            pass
        elif model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
                status=JobStatus.CANCELLING, status_reason=f"cancel requested by {user}"):
            if job.launcher == Run.Launcher.SLURM:
                transaction.on_commit(lambda: _send_cancel(job))
        else:
            job.refresh_from_db()
            why = "it is already being cancelled" if job.status == JobStatus.CANCELLING else "it has ended"
            raise NotCancellable(job, f"{why} ({job.get_status_display().lower()})")
        _audit(job, user, AuditEntry.Action.CANCEL)
    job.refresh_from_db()
    return job


def _send_cancel(job) -> None:
    from or1platform.celery import app

    app.send_task("workers.eval_jobs.cancel_slurm", args=[job.kind, job.pk], queue=queue_of(job))


def filtered_source_name(job: DifficultyJob) -> str:
    return f"{job.source.name}-solved-1-{job.n - 1}-of-{job.n}"[:100]


@transaction.atomic
def create_filtered_source(job: DifficultyJob, user, name: str = "") -> DatasetSource:
    """Register the problems the job kept (solved 1..n-1 times) as a dataset source of the job's team."""
    if not access.can_write(job.team, user):
        raise PermissionDenied(f"{user} may not change {job.team}'s datasets (viewers only read)")
    job = DifficultyJob.objects.select_for_update().get(pk=job.pk)
    if job.status != JobStatus.SUCCEEDED:
        raise ValidationError({"job": f"the job is {job.get_status_display().lower()}, not finished"})
    if job.filtered_source_id is not None:
        raise ValidationError({"job": f"already registered as {job.filtered_source.name}"})
    if not job.kept:
        raise ValidationError({"job": f"no problem was solved between 1 and {job.n - 1} times: nothing to register"})
    name = (name or filtered_source_name(job)).strip()
    if DatasetSource.objects.filter(team=job.team, name=name).exists():
        raise ValidationError({"name": f"{job.team} already has a dataset named {name!r}"})
    source = DatasetSource.objects.create(
        team=job.team, name=name, path=job.filtered_path, format=DatasetSource.Format.JSONL,
        ability=job.source.ability, num_prompts=job.kept,
        description=f"{job.source.name}: the problems {job.model_name} solved 1..{job.n - 1} times of {job.n} "
                    f"(difficulty job #{job.pk}).",
    )
    job.filtered_source = source
    job.save(update_fields=["filtered_source"])
    return source
