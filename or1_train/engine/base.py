"""The actor engine interface and the batch layout every engine shares.

A rollout gives, per sample, the prompt's token ids and the response's token ids. Engines concatenate them
(right-padded), run the model, and read the log-prob of each response token from the logits one position
earlier. Everything downstream (loss, metrics) works on [n, T] tensors where T is the longest response and
``mask`` marks real response tokens, so losses never see padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor


@dataclass
class MiniBatch:
    """One SGD step's worth of samples and the tensors the loss needs."""

    prompts: list[list[int]]
    responses: list[list[int]]
    old_logprobs: Tensor  # [n, T]
    advantages: Tensor  # [n]
    mask: Tensor  # [n, T] float


def response_mask(responses: Sequence[Sequence[int]]) -> Tensor:
    """[n, T] float mask of real response tokens (T = the longest response, at least 1)."""
    width = max([len(r) for r in responses] + [1])
    mask = torch.zeros(len(responses), width)
    for i, r in enumerate(responses):
        mask[i, : len(r)] = 1.0
    return mask


def pack_by_tokens(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """Greedy micro-batches of sample indices whose total length stays within ``budget`` tokens.

    A sample longer than the budget gets a micro-batch of its own. ``None`` means one micro-batch. Order is
    kept so results are reproducible; exactness does not depend on the packing because every micro-batch's
    loss is normalised by the whole mini-batch's counts (see ``or1_train.algo.losses``).
    """
    if budget is None:
        return [list(range(len(lengths)))] if lengths else []
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if current and used + n > budget:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        batches.append(current)
    return batches


def padding_ratio(micro_batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the decoder's token slots that are right-padding over these micro-batches (of sample indices)."""
    slots = used = 0
    for micro in micro_batches:
        if micro:
            slots += len(micro) * max(lengths[i] for i in micro)
            used += sum(lengths[i] for i in micro)
    return 1.0 - used / slots if slots else 0.0


class ActorEngine(Protocol):
    """What the trainer needs from an actor engine (torch or DeepSpeed)."""

    def logprobs(
        self, prompts: list[list[int]], responses: list[list[int]], *, temperature: float, with_entropy: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Per-token log-probs [n, T] (and full-vocabulary entropy) under the current weights, no grad."""
        ...

    def train_mini_batch(self, batch: MiniBatch, *, entropy_coef: float, temperature: float) -> dict[str, float]:
        """One optimizer step on ``batch``; returns loss metrics, grad norm and learning rate."""
        ...

    def named_weights(self) -> Iterable[tuple[str, Tensor]]:
        """The policy's weights by HF parameter name, for pushing into the rollout engine."""
        ...

    def save(self, directory: Path) -> None:
        """HF-format model under ``directory/model`` plus optimizer state."""
        ...

    def load_optimizer(self, directory: Path) -> None: ...

    def reset_optimizer(self) -> None: ...
