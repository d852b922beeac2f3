"""Response log-probs and entropies without ever holding the [tokens x vocab] logits at once.

Long-context RL scores 16K-32K response tokens per sequence. Taking ``model(...).logits`` would hold a
[batch, length, vocab] tensor (32K x 152K x 4 bytes = 20 GB per sequence for Qwen's vocabulary), plus the
softmax autograd keeps. Here the decoder runs once to get hidden states; only the positions that predict a
response token are kept ([N, hidden], prompts and padding never reach the head); then ``lm_head``, the
log-prob of the sampled token and the full-vocabulary entropy are computed ``chunk_tokens`` positions at a
time. Under autograd each chunk runs inside ``torch.utils.checkpoint``: the forward keeps only the chunk's
hidden states and its two output vectors, and the backward recomputes one chunk's logits at a time. Peak
memory for the head is therefore ``chunk_tokens x vocab`` whatever the sequence length
(bench/chunked_memory.py).

The values and gradients equal the naive full-logits computation to float rounding
(tests/train/test_chunked.py): the same `logprobs_from_logits` / `entropy_from_logits` run on the same
numbers, only fewer rows at a time. Both actor engines (torch and DeepSpeed) call `response_logprobs`, so
they share one forward pass.

It assumes the model's logits are ``lm_head(last_hidden_state)``, as for Qwen2, Llama and Mistral (the
paper's models); a config with logit soft-capping or scaling is refused rather than silently mis-scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from or1_train.algo.losses import entropy_from_logits, logprobs_from_logits

#: positions scored per head chunk: 2048 x 152K vocab x 4 bytes = 1.2 GB of float32 logits per chunk
DEFAULT_CHUNK_TOKENS = 2048

#: config attributes that put something between lm_head and the logits (Gemma 2, Cohere, Granite)
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def padded_inputs(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int
) -> tuple[Tensor, Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` [n, L] of prompt + response per sample."""
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
    length = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention[i, : len(s)] = 1
    return input_ids, attention


def response_positions(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where each response token sits and what predicts it, flattened over the batch.

    Returns (rows, cols, positions, labels), each [N] for the N response tokens: token ``cols[k]`` of sample
    ``rows[k]`` is ``labels[k]`` and is predicted by the hidden state at sequence position ``positions[k]``
    (position len(prompt) - 1 + t predicts response token t).
    """
    rows, cols, positions, labels = [], [], [], []
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        rows += [i] * len(r)
        cols += range(len(r))
        positions += range(len(p) - 1, len(p) - 1 + len(r))
        labels += r
    return tuple(torch.tensor(v, dtype=torch.long) for v in (rows, cols, positions, labels))


def _head_chunk(
    lm_head: torch.nn.Module, hidden: Tensor, labels: Tensor, temperature: float, with_entropy: bool
) -> tuple[Tensor, Tensor]:
    logits = lm_head(hidden).float() / temperature
    logprobs = logprobs_from_logits(logits, labels)
    entropy = entropy_from_logits(logits) if with_entropy else torch.zeros_like(logprobs)
    return logprobs, entropy


def head_logprobs(
    lm_head: torch.nn.Module,
    hidden: Tensor,
    labels: Tensor,
    *,
    temperature: float,
    with_entropy: bool,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    num_chunks: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """log p(label) and entropy [N] of ``lm_head(hidden) / temperature`` for hidden [N, H], labels [N].

    At most ``chunk_tokens`` rows of logits exist at any time, in the forward and (through per-chunk
    checkpointing) in the backward. ``num_chunks`` instead splits the rows into exactly that many chunks,
    empty ones included: under ZeRO-3 every call of ``lm_head`` gathers its weight collectively, so all ranks
    must call it equally often whatever their token counts.
    """
    if num_chunks is None:
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
        num_chunks = max(1, math.ceil(hidden.shape[0] / chunk_tokens))
    elif num_chunks < 1:
        raise ValueError(f"num_chunks must be at least 1, got {num_chunks}")
    grad = torch.is_grad_enabled()
    lp_parts, ent_parts = [], []
    for h, y in zip(
        torch.tensor_split(hidden, num_chunks), torch.tensor_split(labels, num_chunks), strict=True
    ):
        if grad:
            lp, ent = checkpoint(_head_chunk, lm_head, h, y, temperature, with_entropy, use_reentrant=False)
        else:
            lp, ent = _head_chunk(lm_head, h, y, temperature, with_entropy)
        lp_parts.append(lp)
        ent_parts.append(ent)
    return torch.cat(lp_parts), (torch.cat(ent_parts) if with_entropy else None)


def check_plain_head(config) -> None:
    """Refuse models whose logits are not plain ``lm_head(hidden)`` (the chunked head would skip a step)."""
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value not in (None, 1.0):
            raise NotImplementedError(
                f"model config sets {name}={value!r}; the chunked log-prob head supports models whose "
                "logits are lm_head(hidden) only"
            )


def response_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    temperature: float,
    with_entropy: bool,
    pad_id: int,
    device: torch.device | str,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    num_chunks: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs [n, T] of each response token under ``model`` (and entropies), with autograd if enabled.

    ``model`` is a Hugging Face causal LM (or DeepSpeed's view of one: hooks on its submodules run as usual).
    T is the longest response; positions past a response's end are 0. ``chunk_tokens`` / ``num_chunks``:
    see `head_logprobs`.
    """
    check_plain_head(model.config)
    input_ids, attention = padded_inputs(prompts, responses, pad_id)
    rows, cols, positions, labels = response_positions(prompts, responses)
    base = model.base_model
    out = base(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False)
    hidden = out.last_hidden_state[rows.to(device), positions.to(device)]
    lp, ent = head_logprobs(
        model.get_output_embeddings(),
        hidden,
        labels.to(device),
        temperature=temperature,
        with_entropy=with_entropy,
        chunk_tokens=chunk_tokens,
        num_chunks=num_chunks,
    )
    width = max([len(r) for r in responses] + [1])
    index = (rows.to(device), cols.to(device))

    def scatter(values: Tensor) -> Tensor:
        out = torch.zeros(len(responses), width, dtype=values.dtype, device=values.device)
        return out.index_put(index, values)

    return scatter(lp), (scatter(ent) if ent is not None else None)
