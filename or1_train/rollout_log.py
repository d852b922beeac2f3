"""A sample of each step's rollout groups, written for the platform's rollout browser.

Curves say that reward is flat or truncation is rising; the responses say why (the model rambles, repeats,
never closes ``</think>``, boxes the wrong thing). Each step, a few of the step's groups are written whole to
``<run_dir>/rollouts/step-NNNNNN.jsonl``, one JSON object per group:

    step, index          the step, and the group's position among the step's sampled groups
    uid, data_source     the prompt's identity and source
    prompt, ground_truth the prompt's text (its chat messages) and the reference answer
    kept                 whether the group was trained on
    filter_reason        why it was not: "solve_all", "solve_none", "no_advantage" (equal rewards),
                         "batch_full" (informative, but the refilled batch was already full); null if kept
    reward_mean, reward_std, reward_min, reward_max
    responses            [{text, reward, truncated, length, advantage}] in sample order; ``length`` counts
                         tokens, ``truncated`` means the response hit the stage's max_response_tokens, and
                         ``advantage`` is the group z-score the update uses (0 for a filtered group);
                         ``text_chars`` gives the full length when the text was clipped

The sample is a seeded draw (run seed, step), so a resumed run rewrites a step's file with the same groups.
Each file is written to a temporary name and renamed, so a reader never sees half a step. A response longer
than ``max_chars`` characters keeps its beginning and its end (where the answer is), which bounds the files
of a 32k-token run.

The platform reads these files (``experiments/dashboards/rollouts.py``); it never imports this module.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROLLOUTS_DIR = "rollouts"
MAX_CHARS = 20_000


def step_file(run_dir: Path | str, step: int) -> Path:
    return Path(run_dir) / ROLLOUTS_DIR / f"step-{step:06d}.jsonl"


def prompt_text(messages: Sequence[dict] | str) -> str:
    """A chat prompt as text: the content alone for one message, role-labelled blocks for several."""
    if isinstance(messages, str):
        return messages
    if len(messages) == 1:
        return str(messages[0].get("content", ""))
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in messages)


def clip(text: str, max_chars: int) -> tuple[str, int | None]:
    """``text`` cut to about ``max_chars`` (head and tail kept), and its full length when it was cut."""
    if len(text) <= max_chars:
        return text, None
    head = max_chars * 2 // 5
    tail = max_chars - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n…[{omitted} characters not recorded]…\n{text[-tail:]}", len(text)


def _filter_reason(rewards: Sequence[float]) -> str:
    if all(r >= 1.0 for r in rewards):
        return "solve_all"
    if all(r <= 0.0 for r in rewards):
        return "solve_none"
    if len(set(rewards)) == 1:
        return "no_advantage"
    return "batch_full"


def record_groups(
    run_dir: Path | str,
    step: int,
    groups: Sequence[Any],
    *,
    kept: Sequence[Any],
    max_groups: int,
    seed: int,
    std_mode: str = "unbiased",
    max_chars: int = MAX_CHARS,
) -> Path | None:
    """Write a seeded sample of ``max_groups`` of the step's groups; returns the file (None when 0 asked).

    ``groups`` are the trainer's groups as sampled this step (``example``, ``samples``, ``rewards``), ``kept``
    the ones it trained on; kept groups from refill rounds that are not in ``groups`` are added after them.
    Advantages come from the trainer's own ``group_advantages`` with the run's ``std_mode``.
    """
    if max_groups <= 0:
        return None
    kept_ids = {id(g) for g in kept}
    seen = {id(g) for g in groups}
    everything = list(groups) + [g for g in kept if id(g) not in seen]
    if not everything:
        return None
    chosen = sorted(random.Random(f"{seed}:{step}").sample(range(len(everything)), min(max_groups, len(everything))))
    rows = [_row(step, i, everything[i], id(everything[i]) in kept_ids, std_mode, max_chars) for i in chosen]
    path = step_file(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _row(step: int, index: int, group: Any, kept: bool, std_mode: str, max_chars: int) -> dict:
    import torch

    from or1_train.algo.advantages import group_advantages

    rewards = [float(r) for r in group.rewards]
    n = len(rewards)
    mean = sum(rewards) / n
    std = (sum((r - mean) ** 2 for r in rewards) / (n - 1)) ** 0.5 if n > 1 else 0.0
    if kept:
        advantages = group_advantages(torch.tensor(rewards), torch.zeros(n, dtype=torch.long), std_mode=std_mode)
        advantages = [float(a) for a in advantages]
    else:
        advantages = [0.0] * n
    responses = []
    for sample, reward, advantage in zip(group.samples, rewards, advantages, strict=True):
        text, full = clip(sample.text, max_chars)
        response = {
            "text": text,
            "reward": reward,
            "truncated": sample.finish_reason == "length",
            "length": len(sample.token_ids),
            "advantage": advantage,
        }
        if full is not None:
            response["text_chars"] = full
        responses.append(response)
    example = group.example
    return {
        "step": step,
        "index": index,
        "uid": example.uid,
        "data_source": example.data_source,
        "prompt": prompt_text(example.prompt),
        "ground_truth": example.ground_truth,
        "kept": kept,
        "filter_reason": None if kept else _filter_reason(rewards),
        "reward_mean": mean,
        "reward_std": std,
        "reward_min": min(rewards),
        "reward_max": max(rewards),
        "responses": responses,
    }
