"""`or1-train eval`: evaluate any HF model directory (or a checkpoint's model/) on a spec's eval sets."""

from __future__ import annotations

from pathlib import Path

from or1_train.bootstrap import ensure_inputs
from or1_train.data.or1 import read_eval_set
from or1_train.evaluate import EvalResult, evaluate_set
from or1_train.prompting import encode_prompt
from or1_train.rewards.dispatch import Rewarder
from or1_train.rollout.base import make_engine
from or1_train.spec import RunSpec


def evaluate_model(
    spec: RunSpec, model_dir: str | Path, *, engine: str | None = None, step: int = 0
) -> list[EvalResult]:
    from transformers import AutoTokenizer

    ensure_inputs(spec)
    ev = spec.evaluation
    if not ev.sets:
        raise ValueError("evaluation.sets: the spec names no eval set")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    max_tokens = ev.max_response_tokens or spec.stages[-1].max_response_tokens

    rollout = make_engine(
        engine or spec.rollout.engine,
        model_dir,
        dtype=spec.model.dtype,
        max_model_len=spec.stages[-1].max_prompt_tokens + max_tokens,
        seed=spec.seed,
        gpu_memory_utilization=spec.rollout.gpu_memory_utilization,
        tensor_parallel_size=spec.rollout.tensor_parallel_size,
        enforce_eager=spec.rollout.enforce_eager,
    )
    rewarder = Rewarder(spec.reward)
    try:
        results = []
        for eval_set in ev.sets:
            results.append(
                evaluate_set(
                    eval_set.name,
                    read_eval_set(eval_set),
                    generate=rollout.generate,
                    encode_prompt=lambda e: encode_prompt(tokenizer, e),
                    score=rewarder.score,
                    k=ev.k,
                    n=ev.samples,
                    temperature=ev.temperature,
                    top_p=ev.top_p,
                    max_tokens=max_tokens,
                    seed=spec.seed,
                    step=step,
                )
            )
        return results
    finally:
        rollout.close()
        rewarder.close()
