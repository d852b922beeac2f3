"""The DeepSpeed actor engine: ZeRO 1/2/3 over every rank of the job, same loss and metrics as `torch`.

Launched once per rank (torchrun on one node, srun + torchrun across nodes, or a plain single process). Every
rank receives the WHOLE mini-batch from the trainer and takes its own share of the samples (token-balanced,
`distributed.balanced_split`), packed into micro-batches by `engine.max_tokens_per_micro_batch`. Exactness
across ranks and micro-batches:

- every micro-batch's loss is normalised by the whole mini-batch's counts (`aggregation_counts`), so the
  micro-batch losses of all ranks SUM to the spec's aggregate over the mini-batch;
- DeepSpeed averages gradients over the data-parallel ranks, so each rank back-propagates ``world x`` its
  loss: the reduced gradient is then that sum's gradient, the same as one process on the whole batch;
- the metrics are summed over micro-batches and ranks (each part is pre-normalised), as the torch engine sums.

Collectives need every rank to make the same calls. ZeRO-3 gathers a module's weights each time it runs, so
all ranks run the same number of micro-batches (a rank with fewer runs a masked one-token filler whose loss
and gradient are exactly 0) and split each micro-batch's head into the same number of chunks
(`or1_train.engine.chunked`). Each rank can compute every rank's plan itself, so this costs no communication.

Checkpoints hold DeepSpeed's own state (``deepspeed/``: fp32 master weights and optimizer shards per rank,
for an exact resume on the same world size) and an HF export (``model/``: safetensors shards written by rank
0 while the ZeRO-3 shards are gathered one parameter at a time) that transformers and vLLM load as is.
"""

from __future__ import annotations

import copy
import json
import math
import resource
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from or1_train import distributed
from or1_train.algo.losses import aggregation_counts, policy_loss
from or1_train.checkpoint import MODEL_DIR
from or1_train.engine.base import MiniBatch, pack_by_tokens, padding_ratio, response_mask
from or1_train.engine.chunked import DEFAULT_CHUNK_TOKENS, response_logprobs
from or1_train.spec import EngineSpec, LossSpec, OptimSpec

#: DeepSpeed's checkpoint tag: its files go to ``<checkpoint>/deepspeed/``
DEEPSPEED_DIR = "deepspeed"
#: HF export shard size; transformers' own default is 5 GB
EXPORT_SHARD_BYTES = 4 * 1024**3
_ADAM_EPS = 1e-8  # torch.optim.AdamW's default, which the torch engine uses


def precision(dtype: str, engine: EngineSpec) -> str:
    """The engine's training precision: bf16 (bf16 weights and compute, fp32 master weights) or fp32."""
    if dtype == "float16":
        raise ValueError("model.dtype: the DeepSpeed engine trains in float32 or bfloat16, not float16")
    return "bfloat16" if engine.bf16 or dtype == "bfloat16" else "float32"


def deepspeed_config(engine: EngineSpec, optim: OptimSpec, dtype: str, on_gpu: bool) -> dict:
    """The DeepSpeed config for a spec's engine and optimizer sections.

    The optimizer is AdamW with the torch engine's hyper-parameters: torch's own implementation when the
    optimizer state stays with the parameters, DeepSpeed's CPU Adam (a JIT-built extension) when offloaded.
    Gradient accumulation is driven by the engine (a variable number of packed micro-batches per step), so
    DeepSpeed's own count is 1 and each step's boundary is set explicitly.
    """
    stage = engine.zero_stage
    if engine.offload_params and stage != 3:
        raise ValueError("engine.offload_params: parameter offload needs engine.zero_stage 3")
    if engine.offload_optimizer and stage == 0:
        raise ValueError("engine.offload_optimizer: optimizer offload needs engine.zero_stage 1, 2 or 3")
    zero: dict = {"stage": stage}
    if engine.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if engine.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    return {
        "train_micro_batch_size_per_gpu": 1,  # not used: the engine builds its own micro-batches
        "gradient_accumulation_steps": 1,
        "gradient_clipping": optim.grad_clip,
        "zero_optimization": zero,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": optim.lr,
                "betas": list(optim.betas),
                "eps": _ADAM_EPS,
                "weight_decay": optim.weight_decay,
                "torch_adam": not engine.offload_optimizer,
            },
        },
        "bf16": {"enabled": precision(dtype, engine) == "bfloat16"},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _Scorer(torch.nn.Module):
    """The HF model behind DeepSpeed's engine, whose forward is the chunked response log-prob pass.

    DeepSpeed runs its backward prologue (ZeRO bookkeeping) from hooks its ``forward`` puts on the outputs,
    so the log-probs must come out of ``engine(...)``, not from calling the HF model directly.
    """

    def __init__(self, policy: torch.nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, prompts, responses, temperature, with_entropy, pad_id, num_chunks):  # noqa: D102
        return response_logprobs(
            self.policy,
            prompts,
            responses,
            temperature=temperature,
            with_entropy=with_entropy,
            pad_id=pad_id,
            device=next(self.policy.parameters()).device,
            num_chunks=num_chunks,
        )


class DeepSpeedActor:
    """Actor engine on every rank of the job; the trainer calls it identically on each rank.

    ``chunk_tokens`` bounds the positions per head chunk; ``config_overrides`` is merged into the generated
    DeepSpeed config (e.g. ZeRO-3 bucket sizes).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        dtype: str,
        optim: OptimSpec,
        loss: LossSpec,
        engine: EngineSpec,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        config_overrides: dict | None = None,
    ):
        import deepspeed
        from transformers import AutoModelForCausalLM

        distributed.init()
        self.world = distributed.world_size()
        on_gpu = torch.cuda.is_available()
        self.config = _merge(deepspeed_config(engine, optim, dtype, on_gpu), config_overrides or {})
        self.zero3 = engine.zero_stage == 3
        if self.zero3:
            # transformers builds the model inside deepspeed.zero.Init (partitioned as it loads) while this
            # object is alive; wrapping from_pretrained in our own zero.Init fails (runtime notes §3).
            from transformers.integrations import HfDeepSpeedConfig

            self._hf_ds_config = HfDeepSpeedConfig(self.config)
        load_dtype = getattr(torch, precision(dtype, engine))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=load_dtype)
        if engine.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        self.engine, _, _, _ = deepspeed.initialize(
            model=_Scorer(model), model_parameters=model.parameters(), config=self.config
        )
        self.model = model
        self.device = next(model.parameters()).device
        self.optim_spec, self.loss_spec, self.engine_spec = optim, loss, engine
        self.chunk_tokens = chunk_tokens
        self.norm_constant: int | None = loss.norm_constant
        self.pad_id = model.config.pad_token_id or 0
        self.updates = 0  # optimizer steps since the last reset: drives the warm-up like the torch scheduler

    # ------------------------------------------------------------------ optimizer

    def reset_optimizer(self) -> None:
        """Fresh AdamW moments and warm-up (a stage that does not carry the optimizer state)."""
        inner = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)  # ZeRO wraps the AdamW
        inner.state.clear()  # AdamW re-creates its moments lazily at the next step
        self.updates = 0

    def load_optimizer(self, directory: Path) -> None:
        """Restore DeepSpeed's state: fp32 masters, optimizer shards, step counter (same world size)."""
        _, client = self.engine.load_checkpoint(
            str(directory), tag=DEEPSPEED_DIR, load_optimizer_states=True, load_lr_scheduler_states=False
        )
        if client is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {directory / DEEPSPEED_DIR}")
        self.updates = int(client["updates"])

    def _lr(self) -> float:
        warmup = self.optim_spec.warmup_steps
        return self.optim_spec.lr * (min(1.0, (self.updates + 1) / warmup) if warmup else 1.0)

    # ------------------------------------------------------------------ planning

    def _plan(self, prompts: list[list[int]], responses: list[list[int]]) -> list[list[list[int]]]:
        """Every rank's micro-batches (sample indices), padded with empty fillers to one common count."""
        lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
        plans = []
        for share in distributed.balanced_split(lengths, self.world):
            packed = pack_by_tokens([lengths[i] for i in share], self.engine_spec.max_tokens_per_micro_batch)
            plans.append([[share[j] for j in micro] for micro in packed])
        count = max(1, *(len(plan) for plan in plans))
        return [plan + [[] for _ in range(count - len(plan))] for plan in plans]

    def _chunks(self, plans: list[list[list[int]]], k: int, responses: list[list[int]]) -> int:
        """Head chunks of micro-batch ``k``: the most any rank needs, so every rank gathers lm_head alike."""
        tokens = [sum(len(responses[i]) for i in plan[k]) or 1 for plan in plans]
        return max(math.ceil(n / self.chunk_tokens) for n in tokens)

    def _run(self, prompts, responses, micro: list[int], temperature: float, with_entropy: bool, chunks: int):
        """Log-probs of one micro-batch through DeepSpeed's forward; a filler scores one pad token."""
        if micro:
            p, r = [prompts[i] for i in micro], [responses[i] for i in micro]
        else:
            p, r = [[self.pad_id]], [[self.pad_id]]
        return self.engine(p, r, temperature, with_entropy, self.pad_id, chunks)

    # ------------------------------------------------------------------ forward

    @torch.no_grad()
    def logprobs(
        self, prompts: list[list[int]], responses: list[list[int]], *, temperature: float, with_entropy: bool
    ) -> tuple[Tensor, Tensor | None]:
        """[n, T] log-probs (and entropies) of the whole batch on every rank; each rank scores its share.

        Rows are filled by exactly one rank and are zero elsewhere, so an all-reduce sum assembles them
        without changing a bit.
        """
        width = max([len(r) for r in responses] + [1])
        out = torch.zeros(2 if with_entropy else 1, len(responses), width)
        plans = self._plan(prompts, responses)
        mine = plans[distributed.rank()]
        for k, micro in enumerate(mine):
            lp, ent = self._run(prompts, responses, micro, temperature, with_entropy, self._chunks(plans, k, responses))
            if micro:
                out[0, micro, : lp.shape[1]] = lp.float().cpu()
                if ent is not None:
                    out[1, micro, : ent.shape[1]] = ent.float().cpu()
        out = distributed.all_reduce_sum(out) * response_mask(responses)
        return out[0], (out[1] if with_entropy else None)

    # ------------------------------------------------------------------ update

    def train_mini_batch(self, batch: MiniBatch, *, entropy_coef: float, temperature: float) -> dict[str, float]:
        counts = aggregation_counts(batch.mask)
        lengths = [len(p) + len(r) for p, r in zip(batch.prompts, batch.responses, strict=True)]
        plans = self._plan(batch.prompts, batch.responses)
        mine = plans[distributed.rank()]
        need_entropy = entropy_coef != 0.0
        totals: dict[str, float] = {}
        for k, micro in enumerate(mine):
            self.engine.set_gradient_accumulation_boundary(k == len(mine) - 1)
            chunks = self._chunks(plans, k, batch.responses)
            logprobs, entropy = self._run(batch.prompts, batch.responses, micro, temperature, need_entropy, chunks)
            width = logprobs.shape[1]
            rows = micro or [0]
            mask = batch.mask[rows, :width] if micro else torch.zeros(1, width)
            out = policy_loss(
                logprobs,
                batch.old_logprobs[rows, :width].to(self.device, logprobs.dtype),
                batch.advantages[rows].to(self.device),
                mask.to(self.device, logprobs.dtype),
                clip_low=self.loss_spec.clip_low,
                clip_high=self.loss_spec.clip_high,
                aggregation=self.loss_spec.aggregation,
                norm_constant=self.norm_constant,
                entropy=entropy,
                entropy_coef=entropy_coef,
                **counts,
            )
            self.engine.backward(out.loss * self.world)  # DeepSpeed averages over ranks; we want the sum
            for name, value in out.metrics().items():
                totals[name] = totals.get(name, 0.0) + value
        lr = self._lr()
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        # ZeRO optimizers report the norm they clip with; without ZeRO the gradients are whole (and reduced)
        # on every rank, so the norm is taken here before DeepSpeed clips them
        unsharded = None if self.engine_spec.zero_stage else _grad_norm(self.model)
        self.engine.step()
        self.updates += 1
        totals = distributed.sum_metrics(totals)
        grad_norm = self.engine.get_global_grad_norm()
        return {
            **totals,
            "grad_norm": float(grad_norm if grad_norm is not None else unsharded),
            "lr": lr,
            "micro_batches": float(len(mine)),
            "padding_ratio": padding_ratio([m for plan in plans for m in plan], lengths),
            "peak_memory_gb": peak_memory_gb(),
        }

    # ------------------------------------------------------------------ weights

    def named_weights(self) -> Iterable[tuple[str, Tensor]]:
        """The HF model's weights, whole; under ZeRO-3 gathered one at a time (call on every rank)."""
        return distributed.full_parameters(self.model)

    def save(self, directory: Path) -> None:
        """DeepSpeed's checkpoint (every rank writes its shards) and the HF export (rank 0 writes)."""
        self.engine.save_checkpoint(
            str(directory), tag=DEEPSPEED_DIR, client_state={"updates": self.updates}, save_latest=False
        )
        export_hf(self.model, Path(directory) / MODEL_DIR)
        distributed.barrier()


def _grad_norm(model: torch.nn.Module) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))


def peak_memory_gb() -> float:
    """Peak accelerator memory of this process (GPU), else its peak resident memory (CPU)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def export_hf(model: torch.nn.Module, out_dir: Path, shard_bytes: int = EXPORT_SHARD_BYTES) -> None:
    """Write ``model`` in Hugging Face format (config + safetensors shards + index) from rank 0.

    Shards are planned from the full shapes first, then each is gathered, written and dropped, so rank 0
    holds at most one shard's tensors beyond its own share. Every rank must call this (the gathers are
    collective). The files are what ``save_pretrained`` writes; transformers and vLLM load them directly.
    """
    from safetensors.torch import save_file

    main = distributed.is_main()
    sizes = {name: math.prod(distributed.full_shape(t)) * t.element_size() for name, t in _named_tensors(model)}
    shards: list[list[str]] = [[]]
    used = 0
    for name, size in sizes.items():
        if shards[-1] and used + size > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    files = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    weights = distributed.full_parameters(model)
    for names, file in zip(shards, files, strict=True):
        tensors = {}
        for expected in names:
            name, tensor = next(weights)
            if name != expected:
                raise RuntimeError(f"parameter order changed while exporting: {name} != {expected}")
            if main:  # a copy: safetensors refuses tensors that share storage
                tensors[name] = tensor.to("cpu").contiguous().clone()
        if main:
            save_file(tensors, str(out_dir / file), metadata={"format": "pt"})
    if main:
        model.config.save_pretrained(str(out_dir))
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(str(out_dir))
        if len(files) > 1:
            owner = {name: file for names, file in zip(shards, files, strict=True) for name in names}
            weight_map = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": owner}
            (out_dir / "model.safetensors.index.json").write_text(json.dumps(weight_map, indent=2))
    distributed.barrier()


def _named_tensors(model: torch.nn.Module) -> Iterable[tuple[str, Tensor]]:
    """Names and (possibly partitioned) tensors in `full_parameters` order, without gathering anything."""
    yield from model.named_parameters()
    for prefix, sub in model.named_modules():
        for name, buffer in sub.named_buffers(recurse=False):
            if buffer is not None and name not in sub._non_persistent_buffers_set:
                yield (f"{prefix}.{name}" if prefix else name), buffer
