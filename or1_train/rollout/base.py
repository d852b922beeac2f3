"""The rollout engine interface the trainer samples through, and the factory that picks an engine.

Both engines take token ids (the trainer owns prompt formatting), return token ids plus the sampler's
log-prob of each sampled token, and accept the actor's new weights in place after each update, so the trainer
loop is the same whichever engine runs.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sample:
    """One sampled response.

    `token_ids` exclude the prompt and include the final eos token when the response stopped on it
    (`finish_reason == "stop"`); a response cut at `max_tokens` is `"length"`. `logprobs[k]` is the
    log-probability of `token_ids[k]` under the distribution it was drawn from: the model's logits after
    temperature and top-p, renormalised. At temperature 1 and top-p 1 that is the model's own log-prob, which
    the trainer's actor forward pass must reproduce. `text` is the decoded response without special tokens.
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    text: str


class RolloutEngine(abc.ABC):
    """Samples responses for the trainer and follows the actor's weights."""

    @abc.abstractmethod
    def generate(
        self,
        prompts: list[list[int]],
        *,
        n: int,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seeds: list[list[int]],
    ) -> list[list[Sample]]:
        """`n` samples for each prompt; `seeds[i][j]` seeds sample j of prompt i.

        Returns one list of `n` samples per prompt, in prompt order.
        """

    @abc.abstractmethod
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load the actor's new weights (Hugging Face parameter names) into the engine in place."""

    @abc.abstractmethod
    def sleep(self) -> None:
        """Release accelerator memory while the actor trains; engines that hold none do nothing."""

    @abc.abstractmethod
    def wake_up(self) -> None:
        """Take back what `sleep` released, before the next `update_weights` and `generate`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the engine's memory and processes."""

    def __enter__(self) -> RolloutEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_request(
    prompts: Sequence[Sequence[int]],
    *,
    n: int,
    max_tokens: int,
    seeds: Sequence[Sequence[int]],
    max_model_len: int,
) -> None:
    """Reject a request the engines would otherwise answer differently (truncate, error, or pad silently).

    A stage's prompt plus its response budget must fit the engine's context: the trainer sizes
    `max_model_len` from the spec, so a prompt that does not fit is a bug to surface, not to hide.
    """
    if n < 1 or max_tokens < 1:
        raise ValueError(f"n and max_tokens must be at least 1, got n={n}, max_tokens={max_tokens}")
    if len(seeds) != len(prompts) or any(len(row) != n for row in seeds):
        raise ValueError(f"seeds must be {len(prompts)} lists of n={n} seeds, one per prompt")
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + max_tokens > max_model_len:
            raise ValueError(
                f"prompt {i} has {len(prompt)} tokens; with max_tokens={max_tokens} it exceeds "
                f"max_model_len={max_model_len}"
            )


def stop_token_ids(model_dir: str | Path, tokenizer) -> list[int]:
    """The tokens a response stops on: the tokenizer's eos plus any eos the model's generation config lists.

    vLLM stops on the generation config's eos ids by itself; the HF engine is given the same list, so both
    engines end responses on the same tokens.
    """
    ids = [tokenizer.eos_token_id]
    gen_cfg = Path(model_dir) / "generation_config.json"
    if gen_cfg.exists():
        eos = json.loads(gen_cfg.read_text()).get("eos_token_id")
        ids += eos if isinstance(eos, list) else [eos] if eos is not None else []
    return sorted({int(i) for i in ids if i is not None})


def make_engine(
    kind: Literal["vllm", "hf"],
    model_dir: str | Path,
    *,
    dtype: str,
    max_model_len: int,
    seed: int,
    gpu_memory_utilization: float = 0.8,
    tensor_parallel_size: int = 1,
    enforce_eager: bool = True,
    enable_sleep_mode: bool = False,
) -> RolloutEngine:
    """Build the rollout engine named by the spec (`rollout.engine`) on the model saved in `model_dir`.

    `dtype` must be the actor's dtype ("float32" on CPU), so the sampler's log-probs are those of the actor.
    The vLLM-only arguments are ignored by the HF engine.
    """
    if kind == "vllm":
        from or1_train.rollout.vllm import VllmEngine

        return VllmEngine(
            model_dir,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            enforce_eager=enforce_eager,
            enable_sleep_mode=enable_sleep_mode,
        )
    if kind == "hf":
        from or1_train.rollout.hf import HfEngine

        return HfEngine.from_pretrained(model_dir, dtype=dtype, max_model_len=max_model_len, seed=seed)
    raise ValueError(f"unknown rollout engine {kind!r}; expected 'vllm' or 'hf'")
