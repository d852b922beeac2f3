"""Words for the editor: field labels, where an error is (``Stage 2 · Max response tokens``), and the spec's
messages reworded for a researcher (``must be at least stage 1's (64): a later stage may not shorten...``).

The spec's own messages stay the reference (the API and the CLI print them as they are); the editor only
rephrases the ones whose field names and symbols read like code, and keeps the rest.
"""

from __future__ import annotations

import re

LABELS = {
    "name": "Name",
    "description": "Description",
    "seed": "Seed",
    "tags": "Tags",
    "path": "Path",
    "dtype": "Weights dtype",
    "max_positions": "Max positions",
    "hidden_size": "Hidden size",
    "num_layers": "Layers",
    "num_heads": "Attention heads",
    "num_kv_heads": "KV heads",
    "vocab_size": "Vocabulary size",
    "distill_steps": "Warm-up steps",
    "distill_levels": "Warm-up task levels",
    "distill_lr": "Warm-up learning rate",
    "format": "Format",
    "weight": "Weight",
    "extra": "Options",
    "steps": "Steps",
    "max_prompt_tokens": "Max prompt tokens",
    "max_response_tokens": "Max response tokens",
    "rollout_batch": "Rollout batch",
    "mini_batch": "Mini-batch",
    "group_size": "Group size",
    "temperature": "Temperature",
    "top_p": "Top-p",
    "optimizer_state": "Carry the optimizer state",
    "entropy_coef": "Carry the entropy coefficient",
    "data_cursor": "Carry the data cursor",
    "drop_solved_prompts": "Drop solved prompts",
    "enabled": "Enabled",
    "target": "Target entropy",
    "delta": "Step size (delta)",
    "initial_coef": "Initial coefficient",
    "min_coef": "Min coefficient",
    "max_coef": "Max coefficient",
    "variant": "Variant",
    "signal": "Signal",
    "clip_low": "Clip low",
    "clip_high": "Clip high",
    "aggregation": "Loss aggregation",
    "norm_constant": "Norm constant",
    "advantage_std": "Advantage std",
    "kl_coef": "KL coefficient",
    "kl_estimator": "KL estimator",
    "lr": "Learning rate",
    "weight_decay": "Weight decay",
    "betas": "Adam betas",
    "grad_clip": "Gradient clip",
    "warmup_steps": "Warm-up steps",
    "refill": "Refill the batch",
    "max_refill_rounds": "Max refill rounds",
    "engine": "Rollout engine",
    "gpu_memory_utilization": "GPU memory utilisation",
    "tensor_parallel_size": "Tensor parallel size",
    "enforce_eager": "Enforce eager",
    "sleep_during_update": "Sleep during update",
    "kind": "Actor engine",
    "zero_stage": "ZeRO stage",
    "offload_optimizer": "Offload the optimizer",
    "offload_params": "Offload the parameters",
    "bf16": "bf16",
    "gradient_checkpointing": "Gradient checkpointing",
    "max_tokens_per_micro_batch": "Max tokens per micro-batch",
    "workers": "Verifier workers",
    "math_timeout_s": "Math timeout (s)",
    "code_timeout_s": "Code timeout (s)",
    "k": "Samples per problem (k)",
    "every_steps": "Every N steps",
    "at_start": "Also at the start",
    "sets": "Evaluation sets",
    "limit": "Limit",
    "keep_last": "Keep the last",
    "launcher": "Launcher",
    "cluster": "Cluster",
    "nodes": "Nodes",
    "gpus_per_node": "GPUs per node",
    "cpus_per_task": "CPUs per task",
    "memory_gb": "Memory (GB)",
    "time_limit_minutes": "Time limit (minutes)",
    "partition": "Partition",
    "account": "Account",
    "qos": "QoS",
    "constraint": "Constraint",
    "max_restarts": "Max restarts",
    "build": "Build it when the path does not exist",
}

SECTIONS = {
    "model": "Model",
    "bootstrap": "Bootstrap",
    "data": "Data mix",
    "transition": "Stage transitions",
    "entropy": "Entropy control",
    "loss": "Loss",
    "optim": "Optimizer",
    "filter": "Online filter",
    "rollout": "Rollout",
    "engine": "Actor engine",
    "reward": "Verifiers",
    "evaluation": "Evaluation",
    "checkpoints": "Checkpoints",
    "resources": "Resources",
}

#: list fields whose items are numbered in words: ``stages[1]`` is "Stage 2"
ITEMS = {"stages": "Stage", "sources": "Source", "sets": "Eval set"}

#: a hint added to a field's message (when it starts with the given words), for rules whose reason is not
#: obvious from the number alone
HINTS = {
    "group_size": ("must be at least 2", "a group needs at least 2 responses to compare"),
    "temperature": ("must be greater than 0", "sampling needs a temperature above 0"),
    "weight": ("must be greater than 0", "a source with no weight would never be sampled"),
}


def label_for(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def tokens(path: str) -> list[str | int]:
    """``stages[1].max_response_tokens`` -> ``['stages', 1, 'max_response_tokens']``."""
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def describe_path(path: str) -> str:
    """Where a spec path is, in words: ``data.sources[0].weight`` -> ``Data mix · Source 1 · Weight``."""
    parts: list[str] = []
    toks = tokens(path)
    for i, tok in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if isinstance(tok, int):
            continue
        if tok in ITEMS and isinstance(nxt, int):
            parts.append(f"{ITEMS[tok]} {nxt + 1}")
        elif i < len(toks) - 1 and tok in SECTIONS:
            parts.append(SECTIONS[tok])
        else:
            parts.append(label_for(tok))
    return " · ".join(parts) or "The spec"


_REWRITES: list[tuple[re.Pattern[str], object]] = [
    (
        re.compile(r"^must be >= stages\[(\d+)\] \((\d+)\)$"),
        lambda m: f"must be at least stage {int(m[1]) + 1}'s ({m[2]}): a later stage may not shorten the responses",
    ),
    (
        re.compile(r"^must be a multiple of mini_batch \((\d+)\)$"),
        lambda m: f"must be a multiple of the mini-batch ({m[1]}), so that it splits into whole SGD steps",
    ),
    (
        re.compile(r"^max_prompt_tokens \+ max_response_tokens = (\d+) exceeds the model's max positions \((\d+)\)$"),
        lambda m: f"prompt + response tokens come to {m[1]}, more than the model's context window ({m[2]} positions)",
    ),
    (
        re.compile(r"^entropy\.min_coef <= initial_coef <= max_coef must hold \(got (\S+) <= (\S+) <= (\S+)\)$"),
        lambda m: f"must lie between the min coefficient ({m[1]}) and the max coefficient ({m[3]}); it is {m[2]}",
    ),
    (
        re.compile(r"^more than one node needs launcher 'slurm'$"),
        lambda m: "more than one node needs the Slurm launcher: the local launcher runs on one host",
    ),
    (re.compile(r"^must be > (\S+)$"), lambda m: f"must be greater than {m[1]}"),
    (re.compile(r"^must be >= (\S+)$"), lambda m: f"must be at least {m[1]}"),
    (re.compile(r"^must be < (\S+)$"), lambda m: f"must be less than {m[1]}"),
    (re.compile(r"^must be <= (\S+)$"), lambda m: f"must be at most {m[1]}"),
]


def humanize(message: str, field: str | None = None) -> str:
    """The spec's ``message`` for ``field`` (a spec field name) in a researcher's words."""
    for pattern, rewrite in _REWRITES:
        match = pattern.match(message)
        if match:
            message = rewrite(match)  # type: ignore[operator]
            break
    message = re.sub(r"\bstages\[(\d+)\]", lambda m: f"stage {int(m[1]) + 1}", message)
    message = re.sub(r"\bdata\.sources\[(\d+)\]", lambda m: f"source {int(m[1]) + 1}", message)
    message = re.sub(
        r"\b[a-z]+(?:_[a-z0-9]+)+\b", lambda m: label_for(m[0]).lower() if m[0] in LABELS else m[0], message
    )
    start, hint = HINTS.get(field or "", (None, None))
    if start and message.startswith(start):
        message = f"{message}: {hint}"
    return message
