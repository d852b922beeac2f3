"""The policy loss: PPO-clip surrogate, entropy bonus and optional KL penalty, with exact aggregation.

The recipe (dossier §1) takes a token-level mean of the clipped surrogate over the WHOLE training
mini-batch, minus alpha times the full-vocabulary entropy, with no KL. The released code only approximated
that global mean per micro-batch (dossier §1.2); here every aggregate divides by counts that the caller can
pass for the whole mini-batch (`num_seqs`, `num_tokens`, `norm_constant`). Split a mini-batch into
micro-batches (for gradient accumulation or token-budget packing), call `policy_loss` on each with the
mini-batch's counts (see `aggregation_counts`), and the micro-batch losses, their gradients and every
metric in `LossOutput` SUM to exactly the values of one call on the whole mini-batch.

Log-probs and entropies here are of the distribution the rollout sampled from: callers divide the logits by
the rollout temperature before `logprobs_from_logits` / `entropy_from_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "token-sum-norm")
KL_ESTIMATORS = ("k1", "k3")

# exp() of a log-ratio beyond this overflows float32 near padding garbage; verl clamps at the same bound.
_LOG_RATIO_BOUND = 20.0


def _as_float(logits: Tensor) -> Tensor:
    """Upcast half-precision logits: logsumexp over a large vocabulary in bf16 loses ~3 digits."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """log softmax(logits)[label] for logits [..., V] and integer labels [...]; returns [...].

    Computed as logit[label] - logsumexp(logits) (verl's choice for fp32): no overflow, and autograd keeps
    no second [..., V] tensor as log_softmax would. The absolute error is about one ulp of the logits'
    magnitude (~2e-6 for float32 logits near 30). Divide the logits by the rollout temperature first.
    """
    logits = _as_float(logits)
    picked = logits.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Full-vocabulary entropy H = logsumexp(z) - sum softmax(z) * z for logits z [..., V]; returns [...].

    This is the entropy the loss's bonus term uses (not the sampled-token estimate the released
    controller reads). Divide the logits by the rollout temperature first.
    """
    logits = _as_float(logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def aggregation_counts(mask: Tensor) -> dict[str, int]:
    """The counts `aggregate` defaults to for this mask: {"num_seqs", "num_tokens"}.

    Compute them once on a whole mini-batch's mask and pass them (`**counts`) to every micro-batch call.
    A sequence counts when it has at least one valid token, so all-padding filler rows never dilute means.
    """
    m = mask.bool()
    return {"num_seqs": int(m.any(dim=-1).sum()), "num_tokens": int(m.sum())}


def _denominator(explicit: float | None, own: Tensor, name: str) -> Tensor | float:
    """The caller's count if given, else this tensor's own (kept a tensor: no device sync)."""
    if explicit is None:
        return own.clamp(min=1.0)  # an all-masked tensor has a zero numerator: it contributes 0, not NaN
    if explicit <= 0:
        raise ValueError(f"{name} must be positive, got {explicit}")
    return float(explicit)


def aggregate(
    values: Tensor,
    mask: Tensor,
    mode: str,
    *,
    num_seqs: int | None = None,
    num_tokens: int | None = None,
    norm_constant: float | None = None,
) -> Tensor:
    """Reduce per-token values [n, T] over the valid tokens of mask [n, T] (bool or 0/1) to a scalar.

    Modes:
      - "token-mean": sum of masked values / num_tokens. The paper's global token mean (eq. 3.1): every
        token weighs the same, so long responses are not down-weighted.
      - "seq-mean-token-mean": sum over sequences of each one's token mean, / num_seqs. Original GRPO
        (the 1/|y| term the paper removes).
      - "token-sum-norm": sum of masked values / (num_seqs * norm_constant). Dr. GRPO; norm_constant is
        the generation budget (default T, this tensor's width). Pass the stage's max response length so
        the constant does not change with a micro-batch's padding.
    num_seqs (sequences with at least one valid token) and num_tokens default to this tensor's own counts.
    """
    if values.dim() != 2 or values.shape != mask.shape:
        raise ValueError(f"values and mask must be [n, T] of one shape, got {tuple(values.shape)} "
                         f"and {tuple(mask.shape)}")
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")
    valid = mask.bool()
    # where(), not values * mask: an inf or NaN on a padded position must not reach the sum.
    masked = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))
    lengths = valid.sum(dim=-1).to(values.dtype)
    if mode == "token-mean":
        return masked.sum() / _denominator(num_tokens, lengths.sum(), "num_tokens")
    seqs = _denominator(num_seqs, (lengths > 0).sum().to(values.dtype), "num_seqs")
    if mode == "seq-mean-token-mean":
        return (masked.sum(dim=-1) / lengths.clamp(min=1.0)).sum() / seqs
    if norm_constant is not None and norm_constant <= 0:
        raise ValueError(f"norm_constant must be positive, got {norm_constant}")
    constant = float(values.shape[-1]) if norm_constant is None else float(norm_constant)
    return masked.sum() / (seqs * constant)


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token KL(pi || pi_ref) estimate from sampled-token log-probs.

    - "k1": logp - ref, unbiased but high variance (can be negative).
    - "k3": Schulman's exp(ref - logp) - (ref - logp) - 1, non-negative and low variance; clamped to
      [-10, 10] as verl's `low_var_kl`. The log-ratio is first bounded to +-20, which changes no value
      (the result is clamped to 10 well before) but keeps exp() finite on padding positions.
    """
    if estimator == "k1":
        return logprobs - ref_logprobs
    if estimator == "k3":
        log_ratio = (ref_logprobs - logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
        return (torch.exp(log_ratio) - log_ratio - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


@dataclass(frozen=True)
class LossOutput:
    """The loss to back-propagate and its parts as floats.

    `loss` = pg_loss - entropy_coef * entropy + kl_coef * kl (`total_loss` is its value). pg_loss,
    entropy and kl use the loss's aggregation; pg_clipfrac (share of valid tokens whose clipped branch is
    active) and ppo_kl (mean of old - new log-prob, an estimate of KL(old || new)) are global token means.
    entropy / kl are 0.0 when the caller passed no entropy / ref_logprobs. Combining micro-batches: when
    every call got the mini-batch's counts, each field of the mini-batch is the SUM of the micro-batch
    fields (not their mean).
    """

    loss: Tensor
    pg_loss: float
    pg_clipfrac: float
    ppo_kl: float
    entropy: float
    kl: float
    total_loss: float

    def metrics(self) -> dict[str, float]:
        """The float fields by name, without the loss tensor."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "loss"}


def _check_same_shape(reference: Tensor, **tensors: Tensor | None) -> None:
    for name, tensor in tensors.items():
        if tensor is not None and tensor.shape != reference.shape:
            raise ValueError(f"{name} must have shape {tuple(reference.shape)}, got {tuple(tensor.shape)}")


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    aggregation: str = "token-mean",
    num_seqs: int | None = None,
    num_tokens: int | None = None,
    norm_constant: float | None = None,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
) -> LossOutput:
    """PPO-clip loss with separate lower and upper clip ranges, an entropy bonus and an optional KL term.

    Per token, ratio = exp(logp - old_logp) (log-ratio bounded to +-20) and
    pg = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high)). clip_high > clip_low is DAPO's
    "clip-higher"; the recipe keeps both at 0.2. Advantages are per sequence [n] (broadcast to every token)
    or per token [n, T]. `entropy` [n, T] (from `entropy_from_logits`) is needed when entropy_coef != 0,
    `ref_logprobs` when kl_coef != 0; each is aggregated like pg. old_logprobs and ref_logprobs are
    treated as constants (detached).
    """
    _check_same_shape(logprobs, old_logprobs=old_logprobs, mask=mask, entropy=entropy,
                      ref_logprobs=ref_logprobs)
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be [n, T], got {tuple(logprobs.shape)}")
    if advantages.dim() == 1 and advantages.shape[0] == logprobs.shape[0]:
        advantages = advantages.unsqueeze(-1)
    elif advantages.shape != logprobs.shape:
        raise ValueError(f"advantages must be [n] or [n, T] for logprobs {tuple(logprobs.shape)}, "
                         f"got {tuple(advantages.shape)}")
    if not 0.0 <= clip_low < 1.0 or clip_high < 0.0:
        raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got {clip_low}, {clip_high}")
    if entropy_coef != 0.0 and entropy is None:
        raise ValueError("entropy_coef is non-zero but no entropy was given")
    if kl_coef != 0.0 and ref_logprobs is None:
        raise ValueError("kl_coef is non-zero but no ref_logprobs were given")

    def agg(values: Tensor, mode: str = aggregation) -> Tensor:
        return aggregate(values, mask, mode, num_seqs=num_seqs, num_tokens=num_tokens,
                         norm_constant=norm_constant)

    advantages = advantages.to(logprobs.dtype).detach()
    old_logprobs = old_logprobs.detach()
    log_ratio = (logprobs - old_logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg_loss = agg(torch.maximum(unclipped, clipped))
    with torch.no_grad():
        pg_clipfrac = agg((clipped > unclipped).to(logprobs.dtype), "token-mean")
        ppo_kl = agg(old_logprobs - logprobs, "token-mean")

    loss = pg_loss
    entropy_value = 0.0
    if entropy is not None:
        entropy_agg = agg(entropy)
        entropy_value = entropy_agg.item()
        loss = loss - entropy_coef * entropy_agg
    kl_value = 0.0
    if ref_logprobs is not None:
        kl_agg = agg(kl_penalty(logprobs, ref_logprobs.detach(), kl_estimator))
        kl_value = kl_agg.item()
        loss = loss + kl_coef * kl_agg
    return LossOutput(
        loss=loss,
        pg_loss=pg_loss.item(),
        pg_clipfrac=pg_clipfrac.item(),
        ppo_kl=ppo_kl.item(),
        entropy=entropy_value,
        kl=kl_value,
        total_loss=loss.item(),
    )
