"""A short supervised warm start on worked solutions, standing in for a distilled reasoning model.

RL only improves what the policy already does sometimes: a group whose samples are all wrong has zero
advantage and teaches nothing. The paper starts from R1-distilled models; on a CPU we cannot download one, so
the demo model is first fine-tuned on the synthetic task's worked solutions until it solves some problems
when sampling, and RL takes it from there.

The loss is the mean cross-entropy over the assistant's tokens only (prompt and padding are masked), and
the target ends with eos so the model learns to stop. The prompt is tokenized through the chat template with
the generation prompt and the response separately, exactly as a rollout sees them (prompt ids, then sampled
ids). Works on any Hugging Face causal LM directory; trains in float32.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from or1_train.data.sources import read_source

_WARMUP_FRACTION = 0.05
_FINAL_LR_FRACTION = 0.1
_MAX_GRAD_NORM = 1.0
_FINAL_LOSS_WINDOW = 10


def _lr_at(step: int, steps: int, lr: float) -> float:
    """Linear warmup over the first 5% of steps, then cosine decay to 10% of `lr`: a short fine-tune at a
    high rate needs both, the warmup against early blow-ups and the decay to settle into a minimum."""
    warmup = max(1, int(steps * _WARMUP_FRACTION))
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (_FINAL_LR_FRACTION + (1 - _FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def _encode(
    data_path: str | Path, tokenizer, max_length: int
) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(prompt ids, response ids + eos) per row with a solution; responses cut to fit `max_length`."""
    data = read_source(data_path)
    pairs, truncated = [], 0
    for example in data.examples:
        solution = example.extra.get("solution")
        if not isinstance(solution, str) or not solution:
            continue
        text = tokenizer.apply_chat_template(example.prompt, tokenize=False, add_generation_prompt=True)
        prompt = tokenizer(text, add_special_tokens=False).input_ids
        response = tokenizer(solution, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        if len(prompt) >= max_length:
            truncated += 1
            continue
        if len(prompt) + len(response) > max_length:
            truncated += 1
            response = response[: max_length - len(prompt)]
        pairs.append((prompt, response))
    if not pairs:
        raise ValueError(
            f"{data_path}: no usable rows with a `solution` field (write them with with_solutions=True)"
        )
    return pairs, truncated


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded ids, attention mask, and labels that are -100 except on response tokens."""
    import torch

    width = max(len(p) + len(r) for p, r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (prompt, response) in enumerate(batch):
        sequence = prompt + response
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
        labels[row, len(prompt) : len(sequence)] = torch.tensor(response)
    return ids, mask, labels


def _save(model, tokenizer, out_dir: Path) -> None:
    """Write to a sibling folder first, then move the files in: `out_dir` may be the folder the model was
    loaded from, and a crash halfway must not leave it with half-written weights."""
    staging = out_dir.with_name(f".{out_dir.name}.distill-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    out_dir.mkdir(parents=True, exist_ok=True)
    for file in staging.iterdir():
        file.replace(out_dir / file.name)
    staging.rmdir()


def distill(
    model_dir: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    max_length: int = 256,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Fine-tune `model_dir` for `steps` AdamW steps on the solutions in `data_path`; save to `out_dir`.

    Deterministic under `seed` (batch order and any dropout); the caller's RNG state is left untouched.
    Returns steps, initial_loss, final_loss (mean of the last 10 steps, to smooth batch noise), the number
    of examples and of truncated ones, tokens trained on and wall time.
    """
    import torch

    from or1_train.model import load_model_and_tokenizer

    if steps < 0 or batch_size < 1 or max_length < 2:
        raise ValueError(
            f"need steps >= 0, batch_size >= 1, max_length >= 2 (got {steps}, {batch_size}, {max_length})"
        )
    start = time.monotonic()
    model, tokenizer = load_model_and_tokenizer(model_dir, dtype="float32")
    pairs, truncated = _encode(data_path, tokenizer, max_length)
    order_rng = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    tokens = 0
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        for step in range(steps):
            batch = []
            while len(batch) < batch_size:
                if not order:  # a fresh shuffle per epoch over the examples
                    order = list(range(len(pairs)))
                    order_rng.shuffle(order)
                batch.append(pairs[order.pop()])
            ids, mask, labels = _collate(batch, tokenizer.pad_token_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
            step_lr = _lr_at(step, steps, lr)
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), _MAX_GRAD_NORM)
            optimizer.step()
            losses.append(loss.item())
            tokens += int((targets != -100).sum())
            if log is not None:
                log(
                    {
                        "step": step + 1,
                        "loss": losses[-1],
                        "lr": step_lr,
                        "tokens": tokens,
                        "elapsed_s": time.monotonic() - start,
                    }
                )
    model.eval()
    _save(model, tokenizer, Path(out_dir))
    return {
        "steps": steps,
        "initial_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-_FINAL_LOSS_WINDOW:]) / len(losses[-_FINAL_LOSS_WINDOW:])
        if losses
        else None,
        "examples": len(pairs),
        "truncated": truncated,
        "tokens": tokens,
        "wall_s": time.monotonic() - start,
    }
