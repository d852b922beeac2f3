"""Evaluation and difficulty jobs: submitted from the browser and the API, run by a worker.

``submit_evaluation`` and ``submit_difficulty`` check the roles, build the run spec that the trainer's CLI
will be handed and validate it with the trainer's own contract now, so that a k below 1, samples below k or
a response length beyond the model's window is a field error in the form or the API, not a job that fails
an hour later. The job row then goes to a worker host's queue (``OR1_LOCAL_LAUNCH_QUEUE``, where the GPUs
are) once the transaction commits; ``workers/eval_jobs.py`` runs it.

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

from experiments import access, registry
from experiments.models import Checkpoint, DatasetSource, DifficultyJob, EvaluationJob, JobStatus, Team
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


def _enqueue(task: str, job_id: int) -> None:
    """Send ``workers.eval_jobs.<task>`` by name (the web tier never imports the workers) once the row commits."""
    from or1platform.celery import app

    queue = settings.OR1_LOCAL_LAUNCH_QUEUE
    transaction.on_commit(lambda: app.send_task(f"workers.eval_jobs.{task}", args=[job_id], queue=queue))


@transaction.atomic
def submit_evaluation(user, *, eval_sets: list[DatasetSource], k: int, temperature: float = 1.0,
                      samples: int | None = None, max_response_tokens: int | None = None,
                      checkpoint: Checkpoint | None = None, model_path: str = "", team: Team | None = None,
                      engine: str = "", dtype: str = "") -> EvaluationJob:
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
        max_response_tokens=max_response_tokens,
    )
    job.eval_sets.set(sets)
    _enqueue("evaluate", job.pk)
    return job


@transaction.atomic
def submit_difficulty(user, *, source: DatasetSource, n: int = 16, temperature: float = 1.0,
                      max_tokens: int | None = None, limit: int | None = None, model_name: str = "",
                      checkpoint: Checkpoint | None = None, model_path: str = "", engine: str = "",
                      dtype: str = "") -> DifficultyJob:
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
        model_name=(model_name or default_name).strip()[:200],
    )
    _enqueue("difficulty", job.pk)
    return job


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
