"""Evaluation: avg@k and the unbiased pass@k estimator on held-out sets.

Peer projects confuse avg@k, pass@k and best@k (peer survey §1.7), so every number here carries its k and
sample count: ``avg@k`` is the mean over problems of the share of k samples that are correct (the paper's
avg@32 on AIME); ``pass@k`` is the Codex estimator 1 - C(n-c, k) / C(n, k) averaged over problems, computed
from n >= k samples, which is unbiased (a bootstrap "best of k" is not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from or1_train.data.schema import Example
from or1_train.seeding import sample_seed

#: seeds of evaluation samples live in their own stream so they never coincide with training samples
EVAL_SEED_OFFSET = 10_000_019


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct out of ``n`` samples (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class EvalResult:
    """One benchmark's scores; ``per_problem`` holds the correct count of each problem."""

    name: str
    k: int
    num_samples: int
    num_problems: int
    avg_at_k: float
    pass_at_k: float
    truncated_ratio: float
    per_problem: list[int] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        prefix = f"val/{self.name}"
        return {
            f"{prefix}/avg@{self.k}": self.avg_at_k,
            f"{prefix}/pass@{self.k}": self.pass_at_k,
            f"{prefix}/truncated_ratio": self.truncated_ratio,
            f"{prefix}/num_problems": float(self.num_problems),
        }

    def summary(self) -> str:
        return (
            f"{self.name}: avg@{self.k} {self.avg_at_k:.3f}, pass@{self.k} {self.pass_at_k:.3f} "
            f"({self.num_problems} problems x {self.k} samples = {self.num_samples})"
        )


def score_correct_counts(correct: Sequence[Sequence[bool]], k: int) -> tuple[float, float]:
    """(avg@k, pass@k) over problems from per-sample correctness (each problem has n >= k samples)."""
    if not correct:
        return 0.0, 0.0
    avg = sum(sum(c) / len(c) for c in correct) / len(correct)
    pk = sum(pass_at_k(len(c), sum(c), k) for c in correct) / len(correct)
    return avg, pk


def evaluate_set(
    name: str,
    examples: Sequence[Example],
    *,
    generate: Callable[..., list],
    encode_prompt: Callable[[Example], list[int]],
    score: Callable[[list[str], list[Example]], list[float]],
    k: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    step: int,
    n: int | None = None,
) -> EvalResult:
    """Sample ``n`` (default ``k``) answers per problem with the rollout engine's ``generate`` and score them:
    avg@k is the mean accuracy of all n, pass@k the unbiased estimate from them (n >= k)."""
    n = n or k
    if n < k:
        raise ValueError(f"{name}: {n} samples per problem cannot estimate pass@{k}")
    prompts = [encode_prompt(e) for e in examples]
    seeds = [[sample_seed(seed + EVAL_SEED_OFFSET, step, i * n + j) for j in range(n)] for i in range(len(prompts))]
    outputs = generate(prompts, n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seeds=seeds)
    texts = [s.text for group in outputs for s in group]
    owners = [e for e, group in zip(examples, outputs, strict=True) for _ in group]
    rewards = score(texts, owners)
    correct = [[r >= 1.0 for r in rewards[i * n : (i + 1) * n]] for i in range(len(examples))]
    truncated = sum(s.finish_reason == "length" for group in outputs for s in group)
    avg, pk = score_correct_counts(correct, k)
    return EvalResult(
        name=name,
        k=k,
        num_samples=len(texts),
        num_problems=len(examples),
        avg_at_k=avg,
        pass_at_k=pk,
        truncated_ratio=truncated / max(len(texts), 1),
        per_problem=[sum(c) for c in correct],
    )
