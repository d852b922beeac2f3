"""The plain-torch actor engine: one process, one device (the CPU here, a single GPU elsewhere).

It holds the HF model and an AdamW optimizer, computes response log-probs and entropies, and takes PPO steps
with micro-batches packed by a token budget. Each micro-batch's loss is normalised by the WHOLE mini-batch's
sequence and token counts, so the accumulated gradient equals the gradient of the spec's aggregation over the
mini-batch exactly (the released OR1 code only approximates the global token mean).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from or1_train.algo.losses import aggregation_counts, policy_loss
from or1_train.checkpoint import MODEL_DIR, OPTIMIZER_FILE
from or1_train.engine.base import MiniBatch, pack_by_tokens, padding_ratio, response_mask
from or1_train.engine.chunked import response_logprobs
from or1_train.spec import EngineSpec, LossSpec, OptimSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TorchActor:
    """Actor engine on one device. ``norm_constant`` is the token-sum-norm denominator (Dr. GRPO)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        dtype: str,
        optim: OptimSpec,
        loss: LossSpec,
        engine: EngineSpec,
        device: str | None = None,
    ):
        from transformers import AutoModelForCausalLM

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=DTYPES[dtype]).to(self.device)
        if engine.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.train()
        self.optim_spec, self.loss_spec, self.engine_spec = optim, loss, engine
        self.norm_constant: int | None = loss.norm_constant
        self.pad_id = self.model.config.pad_token_id or 0
        self.reset_optimizer()

    # ------------------------------------------------------------------ optimizer

    def reset_optimizer(self) -> None:
        spec = self.optim_spec
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay
        )
        warmup = spec.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )

    def load_optimizer(self, directory: Path) -> None:
        state = torch.load(directory / OPTIMIZER_FILE, map_location=self.device, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    # ------------------------------------------------------------------ forward

    def _forward(
        self, prompts: list[list[int]], responses: list[list[int]], temperature: float, with_entropy: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Log-probs [n, T] of each response token (and entropies) for one micro-batch, with autograd.

        The head runs in chunks along the tokens (`or1_train.engine.chunked`), so the [tokens x vocab] logits
        never exist at once; the DeepSpeed engine runs the same function.
        """
        return response_logprobs(
            self.model,
            prompts,
            responses,
            temperature=temperature,
            with_entropy=with_entropy,
            pad_id=self.pad_id,
            device=self.device,
        )

    @torch.no_grad()
    def logprobs(
        self, prompts: list[list[int]], responses: list[list[int]], *, temperature: float, with_entropy: bool
    ) -> tuple[Tensor, Tensor | None]:
        width = max([len(r) for r in responses] + [1])
        out_lp = torch.zeros(len(responses), width)
        out_ent = torch.zeros(len(responses), width) if with_entropy else None
        lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
        for chunk in pack_by_tokens(lengths, self.engine_spec.max_tokens_per_micro_batch):
            lp, ent = self._forward(
                [prompts[i] for i in chunk], [responses[i] for i in chunk], temperature, with_entropy
            )
            out_lp[chunk, : lp.shape[1]] = lp.float().cpu()
            if out_ent is not None and ent is not None:
                out_ent[chunk, : ent.shape[1]] = ent.float().cpu()
        mask = response_mask(responses)
        return out_lp * mask, (out_ent * mask if out_ent is not None else None)

    # ------------------------------------------------------------------ update

    def train_mini_batch(self, batch: MiniBatch, *, entropy_coef: float, temperature: float) -> dict[str, float]:
        counts = aggregation_counts(batch.mask)
        lengths = [len(p) + len(r) for p, r in zip(batch.prompts, batch.responses, strict=True)]
        totals: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        need_entropy = entropy_coef != 0.0
        micro_batches = pack_by_tokens(lengths, self.engine_spec.max_tokens_per_micro_batch)
        for chunk in micro_batches:
            prompts = [batch.prompts[i] for i in chunk]
            responses = [batch.responses[i] for i in chunk]
            logprobs, entropy = self._forward(prompts, responses, temperature, need_entropy)
            width = logprobs.shape[1]
            mask = batch.mask[chunk, :width].to(self.device)
            out = policy_loss(
                logprobs,
                batch.old_logprobs[chunk, :width].to(self.device),
                batch.advantages[chunk].to(self.device),
                mask,
                clip_low=self.loss_spec.clip_low,
                clip_high=self.loss_spec.clip_high,
                aggregation=self.loss_spec.aggregation,
                norm_constant=self.norm_constant,
                entropy=entropy,
                entropy_coef=entropy_coef,
                **counts,
            )
            out.loss.backward()
            for name, value in out.metrics().items():
                totals[name] = totals.get(name, 0.0) + value  # exact: each part is pre-normalised
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim_spec.grad_clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        return {
            **totals,
            "grad_norm": float(grad_norm),
            "lr": lr,
            "micro_batches": float(len(micro_batches)),
            "padding_ratio": padding_ratio(micro_batches, lengths),
        }

    # ------------------------------------------------------------------ weights

    def named_weights(self) -> Iterable[tuple[str, Tensor]]:
        return ((name, tensor.detach()) for name, tensor in self.model.state_dict().items())

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory / MODEL_DIR, safe_serialization=True)
        torch.save(
            {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
            directory / OPTIMIZER_FILE,
        )
