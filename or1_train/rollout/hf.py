"""The fallback rollout engine: transformers `generate` on a left-padded batch.

It needs nothing beyond transformers, runs wherever the actor runs, and can sample straight from the actor's
own model object (no copy, so no weight sync at all). It is much slower than vLLM at any real size.

Log-probs come from the sampler itself, not from a second forward pass: a logits processor placed after the
temperature and top-p warpers sees exactly the scores the token is drawn from and keeps the log-prob of the
token chosen at the previous step. That is what vLLM reports with `logprobs_mode="processed_logprobs"`; it
costs no extra forward pass and holds one [batch, vocab] tensor at a time instead of all steps' scores.

Determinism is per call, not per sample: HF draws all rows of a batch from one torch generator, so a sample
depends on the whole request (every prompt and seed in it). The call's seed is a hash of the engine seed and
all per-sample seeds, so the same request gives the same samples and any change of seeds gives new ones.
The trainer's global RNG is left untouched (the draw runs inside `torch.random.fork_rng`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from or1_train.rollout.base import RolloutEngine, Sample, check_request, stop_token_ids

if TYPE_CHECKING:
    import torch

# Set explicitly because `generate` fills every unset (None) field from the model's generation_config.json,
# and released checkpoints ship sampling defaults there (Qwen: temperature 0.7, top_k 20, top_p 0.8,
# repetition_penalty 1.05) that would silently change the RL sampling distribution. Temperature and top-p are
# applied by our own warpers (see `_processors`), so HF's are kept neutral.
_NEUTRAL_SAMPLING = dict(
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    min_p=0.0,
    typical_p=1.0,
    epsilon_cutoff=0.0,
    eta_cutoff=0.0,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    min_new_tokens=0,
    num_beams=1,
    use_cache=True,
)


class _SampledLogprobs:
    """Logits processor that records log p(token) of each sampled token under the processed scores.

    At step t it sees the scores the token of step t is drawn from, and `input_ids` ending with the token
    drawn at step t-1; so it stores this step's log-softmax and collects the previous step's entry.
    """

    def __init__(self) -> None:
        self.collected: list[torch.Tensor] = []
        self.last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        if self.last is not None:
            self.collected.append(self.last.gather(1, input_ids[:, -1:]))
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """[batch, steps] log-probs, given the final sequences (the last column holds the last token)."""
        import torch

        if self.last is None:
            return sequences.new_zeros((sequences.shape[0], 0), dtype=torch.float32)
        self.collected.append(self.last.gather(1, sequences[:, -1:]))
        return torch.cat(self.collected, dim=1)


class HfEngine(RolloutEngine):
    """transformers `generate` engine over a model object it may share with the actor."""

    def __init__(self, model, tokenizer, *, max_model_len: int, seed: int, stop_ids: list[int]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.seed = seed
        self.stop_ids = stop_ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, dtype: str, max_model_len: int, seed: int) -> HfEngine:
        """Load a copy of the model (on the GPU when there is one); `update_weights` keeps it in sync."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(
            model,
            tokenizer,
            max_model_len=max_model_len,
            seed=seed,
            stop_ids=stop_token_ids(model_dir, tokenizer),
        )

    def _call_seed(self, seeds: list[list[int]]) -> int:
        key = ",".join(str(int(s)) for row in seeds for s in row)
        digest = hashlib.blake2b(f"{self.seed}|{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") & ((1 << 63) - 1)

    @staticmethod
    def _processors(temperature: float, top_p: float, recorder: _SampledLogprobs):
        """Temperature, then top-p, then the recorder: the order vLLM's sampler applies them in."""
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        processors = LogitsProcessorList()
        if temperature > 0 and temperature != 1.0:
            processors.append(TemperatureLogitsWarper(temperature))
        if temperature > 0 and top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))
        processors.append(recorder)
        return processors

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
        """Sample all prompts x n in one `generate` call; temperature 0 means greedy, as in vLLM."""
        import torch
        from transformers import GenerationConfig

        check_request(prompts, n=n, max_tokens=max_tokens, seeds=seeds, max_model_len=self.max_model_len)
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        rows = [list(p) for p in prompts for _ in range(n)]
        input_ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows], device=device)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        config = GenerationConfig(
            **_NEUTRAL_SAMPLING,
            do_sample=temperature > 0,
            max_new_tokens=max_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
        )
        recorder = _SampledLogprobs()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng():
                torch.manual_seed(self._call_seed(seeds))
                sequences = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    logits_processor=self._processors(temperature, top_p, recorder),
                )
        finally:
            self.model.train(was_training)
        responses = sequences[:, width:]
        logprobs = recorder.finish(sequences)
        samples = [self._to_sample(responses[r].tolist(), logprobs[r].tolist(), max_tokens) for r in range(len(rows))]
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _to_sample(self, tokens: list[int], logprobs: list[float], max_tokens: int) -> Sample:
        """Cut a padded row after its first stop token (kept); a row without one ran to max_tokens."""
        stops = set(self.stop_ids)
        end = next((k + 1 for k, t in enumerate(tokens) if t in stops), None)
        if end is None:
            if len(tokens) != max_tokens:
                raise RuntimeError(f"HF generate ended a row after {len(tokens)} < {max_tokens} tokens without eos")
            finish = "length"
            end = len(tokens)
        else:
            finish = "stop"
        kept = tokens[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Sample(token_ids=kept, logprobs=logprobs[:end], finish_reason=finish, text=text)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy the actor's tensors into the model (in effect a no-op when the engine shares the actor's)."""
        import torch

        with torch.no_grad():
            self.model.load_state_dict({name: t.detach() for name, t in named_tensors}, strict=True)

    def sleep(self) -> None:
        """Nothing to release: no KV cache outlives a call, and the weights are often the actor's."""

    def wake_up(self) -> None:
        """Nothing was released by `sleep`."""

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
