"""Evaluation jobs from the browser: `or1-train eval` on a checkpoint (or the run's model) and its results
stored as `EvaluationResult` rows.

The evaluation runs as a subprocess of the Celery worker, like a training run under the local launcher:
the trainer's libraries (torch, vLLM) never load into the worker, a crash is the child's exit code, and the
child gets the same scrubbed environment (`trainer_environment` without an ingestion token, because the
results come back through the JSON file, not the metrics endpoint). The spec is the run's frozen spec with
its evaluation section pointed at the chosen dataset sources, so the prompts, the verifier settings and the
context lengths are those the run trained with.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from experiments.models import Checkpoint, DatasetSource, EvaluationResult, Run
from workers.launchers.local import PLATFORM_SECRETS

EVAL_TIMEOUT_S = 6 * 3600


def eval_spec(spec: dict, sources: list[DatasetSource], *, k: int, temperature: float,
              max_response_tokens: int | None = None) -> dict:
    """The run's spec with `evaluation.sets` replaced by `sources` (each set named after its source)."""
    spec = copy.deepcopy(spec)
    evaluation = dict(spec.get("evaluation") or {})
    evaluation.update(
        sets=[{"name": s.name, "path": s.path, "format": s.format} for s in sources], k=k, temperature=temperature
    )
    if max_response_tokens:
        evaluation["max_response_tokens"] = max_response_tokens
    spec["evaluation"] = evaluation
    return spec


def model_dir(checkpoint: Checkpoint) -> Path:
    """A checkpoint's HF model directory (`<checkpoint>/model` when present, else the checkpoint itself)."""
    path = Path(checkpoint.path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


def run_evaluation(*, run_id: int, checkpoint_id: int | None, source_ids: list[int], k: int,
                   temperature: float = 1.0, max_response_tokens: int | None = None,
                   engine: str | None = None) -> list[int]:
    """Evaluate a checkpoint of run `run_id` (or, without one, the run's spec model); returns the new rows' ids."""
    run = Run.objects.select_related("experiment__project").get(pk=run_id)
    checkpoint = Checkpoint.objects.get(pk=checkpoint_id, run=run) if checkpoint_id else None
    team_id = run.experiment.project.team_id
    sources = list(DatasetSource.objects.filter(pk__in=source_ids, team_id=team_id).order_by("pk"))
    if len(sources) != len(set(source_ids)):
        raise ValueError("every eval set must be a dataset source of the run's team")
    spec = eval_spec(run.spec_as_launched, sources, k=k, temperature=temperature,
                     max_response_tokens=max_response_tokens)
    base = Path(run.run_dir) if run.run_dir else Path(settings.OR1_RUNS_DIR) / str(run.pk)
    work = base / "evals" / timezone.now().strftime("%Y%m%dT%H%M%S%f")
    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    command = [sys.executable, "-m", "or1_train", "eval", str(work / "spec.yaml"), "--out", str(work / "results.json")]
    if checkpoint is not None:
        command += ["--model", str(model_dir(checkpoint))]
    if engine:
        command += ["--engine", engine]
    env = {key: value for key, value in os.environ.items() if key not in PLATFORM_SECRETS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    with open(work / "eval.log", "wb") as log:
        done = subprocess.run(command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, timeout=EVAL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        lines = (work / "eval.log").read_text(errors="replace").strip().splitlines()
        raise RuntimeError(f"or1-train eval exited {done.returncode}: {lines[-1] if lines else 'no output'}")
    results = json.loads((work / "results.json").read_text())
    rows = EvaluationResult.objects.bulk_create(
        EvaluationResult(
            run=run, checkpoint=checkpoint, benchmark=r["name"], k=r["k"], num_samples=r["num_samples"],
            avg_at_k=r["avg_at_k"], pass_at_k=r["pass_at_k"], temperature=temperature,
            step=checkpoint.step if checkpoint else None,
        )
        for r in results
    )
    return [row.pk for row in rows]


@shared_task(name="workers.eval_jobs.evaluate")
def evaluate(run_id: int, checkpoint_id: int | None, source_ids: list[int], k: int, temperature: float = 1.0,
             max_response_tokens: int | None = None) -> list[int]:
    return run_evaluation(run_id=run_id, checkpoint_id=checkpoint_id, source_ids=source_ids, k=k,
                          temperature=temperature, max_response_tokens=max_response_tokens)
