"""Behaviour metrics the paper tracks: self-reflection phrases, response length and reward per data source.

Long chain-of-thought RL is judged partly by how the model reasons: the released code counts reflection
keywords ("recheck", "double check", ...) and new-thought markers ("alternatively", "wait", ...) per data source
(``verl/utils/metric.py``). The counts here are whole-word, case-insensitive matches in the response text;
density is matches per 1,000 response tokens so that longer answers do not look more reflective by length alone.
The mean reward per source (``exploration/scores/<source>/mean``, as released) shows which part of a mix the
model is learning, which the batch mean hides when the mix holds easy and hard sources.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

REFLECTION_PHRASES = ("rethink", "recheck", "re-check", "double check", "double-check", "re-evaluate", "verify")
NEW_THOUGHT_PHRASES = ("alternatively", "wait", "however", "on second thought", "let me try")

_PATTERNS = {
    "self-reflection": re.compile(r"\b(?:" + "|".join(map(re.escape, REFLECTION_PHRASES)) + r")\b", re.IGNORECASE),
    "new-thoughts": re.compile(r"\b(?:" + "|".join(map(re.escape, NEW_THOUGHT_PHRASES)) + r")\b", re.IGNORECASE),
}


def count_phrases(text: str) -> dict[str, int]:
    """Matches of each phrase family in ``text``."""
    return {family: len(pattern.findall(text)) for family, pattern in _PATTERNS.items()}


def behaviour_metrics(
    texts: Sequence[str],
    lengths: Sequence[int],
    truncated: Sequence[bool],
    sources: Sequence[str],
    rewards: Sequence[float],
) -> dict[str, float]:
    """Per-source mean reward, response length (all and untruncated) and phrase counts/densities for one step."""
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, source in enumerate(sources):
        by_source[source or "unknown"].append(i)
    metrics: dict[str, float] = {}
    for source, idx in sorted(by_source.items()):
        tokens = sum(lengths[i] for i in idx)
        metrics[f"exploration/scores/{source}/mean"] = sum(rewards[i] for i in idx) / len(idx)
        metrics[f"response_length/{source}/mean"] = tokens / len(idx)
        untruncated = [lengths[i] for i in idx if not truncated[i]]
        if untruncated:
            metrics[f"response_length/{source}_untruncated/mean"] = sum(untruncated) / len(untruncated)
        counts: dict[str, int] = defaultdict(int)
        for i in idx:
            for family, n in count_phrases(texts[i]).items():
                counts[family] += n
        for family in _PATTERNS:
            metrics[f"{family}/{source}/count"] = counts[family] / len(idx)
            metrics[f"{family}/{source}/density"] = 1000.0 * counts[family] / max(tokens, 1)
    return metrics
