"""Offline difficulty estimation (dossier §4.2): N samples per problem from the base model, pass counts kept.

OR1 sampled N = 16 (math) / 8 (code) answers at T = 1.0 per problem with each base model and trained only on
problems solved between 1 and N-1 times. `estimate_difficulty` does the sampling with the rollout engine and
the run's own verifiers, and records per problem, under the model's name:

- `extra_info.pass_count[model]` and `extra_info.pass_samples[model]`: c and N, stated explicitly, because
  OR1's card calls its number a "difficulty" and the direction of that scale is not documented;
- `extra_info.model_difficulty[model] = c`, so the released filter (`DifficultyFilter`, [1, 15] at N = 16)
  reads these files directly; [1, N-1] drops the never and the always solved at any N.

Heavy imports (transformers, the engine) stay inside the function: the CLI's light paths import this module.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from or1_train.data.or1 import DIFFICULTY_KEY, write_jsonl
from or1_train.data.schema import Example
from or1_train.data.sources import read_source
from or1_train.seeding import sample_seed

#: sampling seeds of difficulty estimation live in their own stream (not training's, not evaluation's)
DIFFICULTY_SEED_OFFSET = 20_000_003


@dataclass
class DifficultyReport:
    model: str
    n: int
    num_problems: int
    histogram: dict[int, int]  # pass count -> number of problems, for every count 0..n
    kept: int
    out: str
    filtered: str

    def to_json(self) -> str:
        return json.dumps(vars(self) | {"histogram": {str(k): v for k, v in self.histogram.items()}})


def count_passes(
    examples: Sequence[Example],
    *,
    generate: Callable[..., list],
    encode_prompt: Callable[[Example], list[int]],
    score: Callable[[list[str], list[Example]], list[float]],
    n: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    batch: int = 64,
) -> list[int]:
    """How many of `n` sampled answers to each problem the verifier accepts (reward >= 1), in order."""
    counts: list[int] = []
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        seeds = [[sample_seed(seed + DIFFICULTY_SEED_OFFSET, 0, (start + i) * n + j) for j in range(n)]
                 for i in range(len(chunk))]
        outputs = generate([encode_prompt(e) for e in chunk], n=n, max_tokens=max_tokens,
                           temperature=temperature, top_p=top_p, seeds=seeds)
        texts = [s.text for group in outputs for s in group]
        owners = [e for e, group in zip(chunk, outputs, strict=True) for _ in group]
        rewards = score(texts, owners)
        counts.extend(sum(r >= 1.0 for r in rewards[i * n : (i + 1) * n]) for i in range(len(chunk)))
    return counts


def annotate(example: Example, model: str, passed: int, n: int) -> Example:
    """The example with its pass count for `model` recorded (earlier models' entries are kept)."""
    extra = dict(example.extra)
    for key, value in (("pass_count", passed), ("pass_samples", n), (DIFFICULTY_KEY, passed)):
        table = extra.get(key)
        if isinstance(table, str):
            table = json.loads(table)
        extra[key] = {**(table if isinstance(table, dict) else {}), model: value}
    return replace(example, extra=extra)


def estimate_difficulty(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    n: int,
    model_name: str | None = None,
    data_format: str = "auto",
    filtered: str | Path | None = None,
    engine: str = "vllm",
    dtype: str = "bfloat16",
    max_tokens: int = 32768,
    max_prompt_tokens: int = 2048,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    reward=None,
    limit: int | None = None,
) -> DifficultyReport:
    """Sample `n` answers per problem of `data`, write every problem with its pass count to `out` (JSONL) and
    those solved 1..n-1 times to `filtered` (default: `<out stem>.filtered.jsonl`)."""
    from transformers import AutoConfig, AutoTokenizer

    from or1_train.prompting import encode_prompt
    from or1_train.rewards.dispatch import Rewarder
    from or1_train.rollout.base import make_engine
    from or1_train.spec import RewardSpec

    if n < 2:
        raise ValueError("--n must be at least 2: with one sample no problem is solved between 1 and n-1 times")
    model = model_name or Path(model_dir).name
    source = read_source(data, data_format)
    examples = source.examples[:limit] if limit else source.examples
    if not examples:
        raise ValueError(f"{data}: no usable problems ({dict(source.skipped)} rows skipped)")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # The context never exceeds the model's window (a small model with 512 positions and default lengths).
    window = getattr(AutoConfig.from_pretrained(str(model_dir)), "max_position_embeddings", None)
    max_len = min(max_prompt_tokens + max_tokens, window or max_prompt_tokens + max_tokens)
    rollout = make_engine(engine, model_dir, dtype=dtype, max_model_len=max_len, seed=seed)
    rewarder = Rewarder(reward or RewardSpec())
    try:
        counts = count_passes(
            examples, generate=rollout.generate, encode_prompt=lambda e: encode_prompt(tokenizer, e),
            score=rewarder.score, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
        )
    finally:
        rollout.close()
        rewarder.close()
    annotated = [annotate(e, model, c, n) for e, c in zip(examples, counts, strict=True)]
    out = Path(out)
    filtered = Path(filtered) if filtered else out.with_name(f"{out.stem}.filtered.jsonl")
    write_jsonl(out, annotated)
    kept = [e for e, c in zip(annotated, counts, strict=True) if 1 <= c <= n - 1]
    write_jsonl(filtered, kept)
    histogram = Counter(counts)
    return DifficultyReport(
        model=model, n=n, num_problems=len(examples), histogram={c: histogram[c] for c in range(n + 1)},
        kept=len(kept), out=str(out), filtered=str(filtered),
    )
