"""Evaluation jobs: the spec they hand to `or1-train eval` and the model directory of a checkpoint."""

from __future__ import annotations

from or1_train.spec import RunSpec
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)
from workers.eval_jobs import eval_spec, model_dir


def test_eval_spec_points_the_run_spec_at_the_sources_and_stays_valid(cast):
    spec = eval_spec(cast.own_run.spec_as_launched, [cast.source], k=4, temperature=0.6, max_response_tokens=32)
    parsed = RunSpec.model_validate(spec)
    assert [(s.name, s.path) for s in parsed.evaluation.sets] == [(cast.source.name, cast.source.path)]
    assert (parsed.evaluation.k, parsed.evaluation.temperature, parsed.evaluation.max_response_tokens) == (4, 0.6, 32)
    assert spec is not cast.own_run.spec_as_launched


def test_model_dir_prefers_the_checkpoints_model_folder(cast):
    assert model_dir(cast.checkpoint).name == "model"
