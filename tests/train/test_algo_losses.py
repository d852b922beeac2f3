"""Log-probs, entropy, aggregation, KL estimators and the PPO-clip loss, against hand-computed numbers."""

import math

import pytest
import torch

from or1_train.algo.losses import (
    AGGREGATIONS,
    aggregate,
    aggregation_counts,
    entropy_from_logits,
    kl_penalty,
    logprobs_from_logits,
    policy_loss,
)

F64 = torch.float64


# ---------------------------------------------------------------- log-probs and entropy


def test_logprobs_hand_values():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=F64)
    labels = torch.tensor([2, 1])
    # 3 - log(e + e^2 + e^3) and -log 3
    expected = torch.tensor([-0.40760596444438013, -1.0986122886681098], dtype=F64)
    assert torch.allclose(logprobs_from_logits(logits, labels), expected, atol=1e-14)


def test_logprobs_match_explicit_log_of_softmax_on_random_logits():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 11, generator=gen, dtype=F64)
    labels = torch.randint(0, 11, (2, 5), generator=gen)
    probs = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    manual = torch.log(probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1))
    assert torch.allclose(logprobs_from_logits(logits, labels), manual, atol=1e-12)


def test_logprobs_are_stable_for_huge_logits():
    # exp(1000) overflows even float64: a naive log(softmax) gives -inf / nan here.
    out = logprobs_from_logits(torch.tensor([[1000.0, 0.0], [1000.0, 1000.0]]), torch.tensor([1, 0]))
    assert out.tolist() == pytest.approx([-1000.0, -math.log(2)], abs=1e-4)
    out = logprobs_from_logits(torch.tensor([[1e4, 1e4, 1e4]], dtype=F64), torch.tensor([2]))
    assert out.item() == pytest.approx(-math.log(3), abs=1e-10)


def test_half_precision_logits_are_upcast():
    logits = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.bfloat16)
    out = logprobs_from_logits(logits, torch.tensor([2]))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(-0.40760596444438013, abs=1e-6)
    assert entropy_from_logits(logits).dtype == torch.float32


def test_entropy_hand_values():
    # p = [1/4, 3/4]: -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623351446188083
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=F64)
    assert entropy_from_logits(logits).item() == pytest.approx(0.5623351446188083, abs=1e-14)
    # The caller applies the temperature: logits [0, 2 ln 3] at T = 2 are the same distribution.
    hot = torch.tensor([[0.0, 2 * math.log(3.0)]], dtype=F64)
    assert entropy_from_logits(hot / 2.0).item() == pytest.approx(0.5623351446188083, abs=1e-14)


def test_uniform_entropy_is_log_v():
    for vocab in (2, 8, 1000):
        h = entropy_from_logits(torch.full((3, vocab), 7.5, dtype=F64))
        assert torch.allclose(h, torch.full((3,), math.log(vocab), dtype=F64), atol=1e-12)


def test_entropy_matches_explicit_sum_and_survives_peaked_logits():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, 13, generator=gen, dtype=F64) * 3
    p = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    explicit = -(p * torch.log(p)).sum(-1)
    assert torch.allclose(entropy_from_logits(logits), explicit, atol=1e-12)
    peaked = entropy_from_logits(torch.tensor([[1000.0, 0.0, 0.0]]))
    assert torch.isfinite(peaked).all() and peaked.item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- aggregation

VALUES = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]], dtype=F64)
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
# masked sum 1+2+3 + 5 + 9+10+11+12 = 53 over 8 tokens; per-sequence means 2, 5, 10.5


def test_aggregation_counts():
    assert aggregation_counts(MASK) == {"num_seqs": 3, "num_tokens": 8}


@pytest.mark.parametrize(
    ("mode", "kwargs", "expected"),
    [
        ("token-mean", {}, 53 / 8),
        ("token-mean", {"num_tokens": 16}, 53 / 16),
        ("seq-mean-token-mean", {}, 17.5 / 3),
        ("seq-mean-token-mean", {"num_seqs": 6}, 17.5 / 6),
        ("token-sum-norm", {}, 53 / 12),  # 3 sequences x width 4
        ("token-sum-norm", {"norm_constant": 10}, 53 / 30),
        ("token-sum-norm", {"num_seqs": 5, "norm_constant": 10}, 53 / 50),
    ],
)
def test_aggregate_hand_values(mode, kwargs, expected):
    assert aggregate(VALUES, MASK, mode, **kwargs).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("token-mean", 53 / 8), ("seq-mean-token-mean", 17.5 / 3), ("token-sum-norm", 53 / 12)],
)
def test_an_all_padding_row_changes_nothing(mode, expected):
    values = torch.cat([VALUES, torch.full((1, 4), 100.0, dtype=F64)])
    mask = torch.cat([MASK, torch.zeros(1, 4, dtype=MASK.dtype)])
    assert aggregate(values, mask, mode).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_non_finite_padding_values_are_ignored(mode):
    values = VALUES.clone()
    values[0, 3], values[1, 1] = float("inf"), float("nan")
    assert aggregate(values, MASK.bool(), mode).item() == aggregate(VALUES, MASK, mode).item()


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_all_masked_tensor_aggregates_to_zero(mode):
    assert aggregate(VALUES, torch.zeros_like(MASK), mode).item() == 0.0


def test_aggregate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(VALUES, MASK, "sum")
    with pytest.raises(ValueError, match="shape"):
        aggregate(VALUES, MASK[:, :3], "token-mean")
    with pytest.raises(ValueError, match="num_tokens"):
        aggregate(VALUES, MASK, "token-mean", num_tokens=0)
    with pytest.raises(ValueError, match="norm_constant"):
        aggregate(VALUES, MASK, "token-sum-norm", norm_constant=0)


# ---------------------------------------------------------------- KL estimators


def test_kl_estimators_hand_values():
    logp = torch.tensor([-1.0, -2.0, -1.0, -1.0, -20.0], dtype=F64)
    ref = torch.tensor([-1.5, -1.0, -1.0, 4.0, -5.0], dtype=F64)
    assert kl_penalty(logp, ref, "k1").tolist() == [0.5, -1.0, 0.0, -5.0, -15.0]
    # k3 with d = ref - logp = [-0.5, 1, 0, 5, 15]: e^d - d - 1 = e^-0.5 - 0.5, e - 2, 0, then > 10 -> 10
    expected = torch.tensor([0.10653065971263342, 0.7182818284590451, 0.0, 10.0, 10.0], dtype=F64)
    assert torch.allclose(kl_penalty(logp, ref, "k3"), expected, atol=1e-14)
    # d = -15: e^-15 + 15 - 1 = 14.0000003 -> clamped to 10
    assert kl_penalty(torch.tensor([0.0]), torch.tensor([-15.0]), "k3").item() == 10.0
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(logp, ref, "k2")


def test_k3_gradient_stays_finite_on_garbage_positions():
    logp = torch.tensor([-200.0, -1.0], dtype=F64, requires_grad=True)
    ref = torch.tensor([0.0, -1.2], dtype=F64)
    (kl_penalty(logp, ref, "k3") * torch.tensor([0.0, 1.0], dtype=F64)).sum().backward()
    assert torch.isfinite(logp.grad).all()
    # d/dlogp of e^(ref-logp) - (ref-logp) - 1 = 1 - e^(ref-logp) = 1 - e^-0.2
    assert logp.grad.tolist() == pytest.approx([0.0, 1 - math.exp(-0.2)], abs=1e-14)


# ---------------------------------------------------------------- PPO clipping

# One sequence, 7 valid tokens and one padded token with a garbage ratio e^30.
# clip_low 0.1 / clip_high 0.3 -> ratio range [0.9, 1.3].
#   token  ratio  A    -A*ratio  -A*clipped   max    clipped branch active?
#   a      1.5   +1    -1.5      -1.3        -1.3    yes (above range, A > 0)
#   b      1.5   -1    +1.5      +1.3        +1.5    no
#   c      0.5   +1    -0.5      -0.9        -0.5    no
#   d      0.5   -1    +0.5      +0.9        +0.9    yes (below range, A < 0)
#   e      1.25  +2    -2.5      -2.5        -2.5    no  (inside the high side; 0.2 would clip it)
#   f      0.85  -1    +0.85     +0.9        +0.9    yes (below the low side; 0.2 would not clip it)
#   g      1.0    0     0         0           0      no
RATIOS = [1.5, 1.5, 0.5, 0.5, 1.25, 0.85, 1.0, math.exp(30.0)]
ADVS = [1.0, -1.0, 1.0, -1.0, 2.0, -1.0, 0.0, 5.0]
CLIP_MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
# ppo_kl = mean(-log ratio) over a..g = -(2 ln 1.5 + 2 ln 0.5 + ln 1.25 + ln 0.85) / 7
PPO_KL = 0.07353421758387528


def _clip_inputs():
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0, -1.5, -0.7, -2.2, -40.0]], dtype=F64)
    new = (old + torch.log(torch.tensor([RATIOS], dtype=F64))).requires_grad_(True)
    return new, old, torch.tensor([ADVS], dtype=F64)


def test_asymmetric_clipping_hand_values_and_gradients():
    new, old, adv = _clip_inputs()
    out = policy_loss(new, old, adv, CLIP_MASK, clip_low=0.1, clip_high=0.3)
    # sum of the max column: -1.3 + 1.5 - 0.5 + 0.9 - 2.5 + 0.9 + 0 = -1.0, over 7 tokens
    assert out.pg_loss == pytest.approx(-1.0 / 7, abs=1e-12)
    assert out.pg_clipfrac == pytest.approx(3 / 7, abs=1e-12)
    assert out.ppo_kl == pytest.approx(PPO_KL, abs=1e-12)
    assert out.total_loss == pytest.approx(-1.0 / 7, abs=1e-12)
    assert out.entropy == 0.0 and out.kl == 0.0
    out.loss.backward()
    # d(-A * ratio)/dlogp = -A * ratio where the unclipped branch is active, 0 where clipped, / 7 tokens
    expected_grad = [0.0, 1.5 / 7, -0.5 / 7, 0.0, -2.5 / 7, 0.0, 0.0, 0.0]
    assert new.grad[0].tolist() == pytest.approx(expected_grad, abs=1e-12)


def test_symmetric_clipping_differs_on_the_asymmetric_tokens():
    new, old, adv = _clip_inputs()
    out = policy_loss(new, old, adv, CLIP_MASK, clip_low=0.2, clip_high=0.2)
    # range [0.8, 1.2]: a -1.2 (clipped), b 1.5, c -0.5, d 0.8 (clipped), e -2.4 (clipped), f 0.85, g 0
    assert out.pg_loss == pytest.approx(-0.95 / 7, abs=1e-12)
    assert out.pg_clipfrac == pytest.approx(3 / 7, abs=1e-12)
    out.loss.backward()
    assert new.grad[0].tolist() == pytest.approx([0.0, 1.5 / 7, -0.5 / 7, 0.0, 0.0, 0.85 / 7, 0.0, 0.0],
                                                  abs=1e-12)


def test_sequence_advantages_broadcast_to_tokens():
    gen = torch.Generator().manual_seed(3)
    new = torch.randn(3, 5, generator=gen, dtype=F64) * 0.3 - 2
    old = new + torch.randn(3, 5, generator=gen, dtype=F64) * 0.3
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=F64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    per_seq = policy_loss(new, old, adv, mask)
    per_token = policy_loss(new, old, adv[:, None].expand(3, 5), mask)
    assert per_seq.metrics() == per_token.metrics()
    assert per_seq.pg_clipfrac > 0  # the example does exercise clipping


def test_entropy_and_kl_terms_compose_the_total():
    new = torch.tensor([[-1.0, -2.0]], dtype=F64, requires_grad=True)
    old = new.detach().clone()
    entropy = torch.tensor([[0.5, 1.5]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]], dtype=F64)
    mask = torch.ones(1, 2)
    out = policy_loss(new, old, torch.tensor([1.0], dtype=F64), mask, entropy=entropy, entropy_coef=0.1,
                      ref_logprobs=ref, kl_coef=0.5)
    # pg: ratio 1, -A * 1 = -1 per token; entropy mean 1.0; k3 mean (0.1065306597 + 0.7182818285) / 2
    assert out.pg_loss == pytest.approx(-1.0, abs=1e-12)
    assert out.entropy == pytest.approx(1.0, abs=1e-12)
    assert out.kl == pytest.approx(0.41240624408583937, abs=1e-12)
    assert out.total_loss == pytest.approx(-0.8937968779570804, abs=1e-12)
    assert out.loss.item() == out.total_loss
    out.loss.backward()
    assert entropy.grad[0].tolist() == pytest.approx([-0.05, -0.05], abs=1e-14)  # -coef / 2 tokens
    k1 = policy_loss(new, old, torch.tensor([1.0], dtype=F64), mask, ref_logprobs=ref, kl_estimator="k1")
    assert k1.kl == pytest.approx(-0.25, abs=1e-12)  # mean of [0.5, -1.0]
    assert k1.total_loss == pytest.approx(-1.0, abs=1e-12)  # kl_coef 0: logged, not added


def test_loss_output_metrics_are_plain_floats():
    new, old, adv = _clip_inputs()
    metrics = policy_loss(new, old, adv, CLIP_MASK).metrics()
    assert set(metrics) == {"pg_loss", "pg_clipfrac", "ppo_kl", "entropy", "kl", "total_loss"}
    assert all(type(v) is float for v in metrics.values())


def test_policy_loss_rejects_bad_arguments():
    new, old, adv = _clip_inputs()
    with pytest.raises(ValueError, match="entropy_coef"):
        policy_loss(new, old, adv, CLIP_MASK, entropy_coef=0.01)
    with pytest.raises(ValueError, match="kl_coef"):
        policy_loss(new, old, adv, CLIP_MASK, kl_coef=0.01)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(new, old, adv[:, :3], CLIP_MASK)
    with pytest.raises(ValueError, match="old_logprobs"):
        policy_loss(new, old[:, :3], adv, CLIP_MASK)
    with pytest.raises(ValueError, match="clip_low"):
        policy_loss(new, old, adv, CLIP_MASK, clip_low=1.0)


# ---------------------------------------------------------------- micro-batches sum to the mini-batch


def _mini_batch():
    gen = torch.Generator().manual_seed(4)
    n, width = 7, 9
    lengths = torch.tensor([9, 3, 1, 6, 9, 2, 5])
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    logits = torch.randn(n, width, 5, generator=gen, dtype=F64)
    labels = torch.randint(0, 5, (n, width), generator=gen)
    old = logprobs_from_logits(logits + 0.4 * torch.randn(n, width, 5, generator=gen, dtype=F64), labels)
    ref = logprobs_from_logits(logits + 0.4 * torch.randn(n, width, 5, generator=gen, dtype=F64), labels)
    adv = torch.randn(n, generator=gen, dtype=F64)
    return logits, labels, old, ref, adv, mask, lengths


def _loss(logits, labels, old, ref, adv, mask, mode, counts):
    return policy_loss(logprobs_from_logits(logits, labels), old, adv, mask, clip_low=0.2, clip_high=0.28,
                       aggregation=mode, entropy=entropy_from_logits(logits), entropy_coef=0.01,
                       ref_logprobs=ref, kl_coef=0.05, norm_constant=9, **counts)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_micro_batches_sum_exactly_to_the_mini_batch(mode):
    logits, labels, old, ref, adv, mask, lengths = _mini_batch()
    counts = aggregation_counts(mask)

    whole_logits = logits.clone().requires_grad_(True)
    whole = _loss(whole_logits, labels, old, ref, adv, mask, mode, counts)
    whole.loss.backward()

    split_logits = logits.clone().requires_grad_(True)
    parts = []
    for rows in ([0, 1], [2], [3, 4, 5, 6]):
        # Like token-budget packing, each micro-batch is trimmed to its own longest response.
        width = int(lengths[rows].max())
        sl = (rows, slice(0, width))
        part = _loss(split_logits[sl], labels[sl], old[sl], ref[sl], adv[rows], mask[sl], mode, counts)
        part.loss.backward()
        parts.append(part)

    assert whole.pg_clipfrac > 0
    assert torch.allclose(split_logits.grad, whole_logits.grad, atol=1e-14, rtol=0)
    for name, value in whole.metrics().items():
        assert sum(getattr(p, name) for p in parts) == pytest.approx(value, abs=1e-12), name


def test_micro_batches_without_totals_are_not_the_mini_batch():
    """The counts are what makes the sum exact: each micro-batch's own token mean is a different loss."""
    logits, labels, old, ref, adv, mask, _ = _mini_batch()
    whole = _loss(logits, labels, old, ref, adv, mask, "token-mean", {})
    halves = [_loss(logits[r], labels[r], old[r], ref[r], adv[r], mask[r], "token-mean", {})
              for r in (slice(0, 2), slice(2, 7))]
    assert abs(sum(h.pg_loss for h in halves) / 2 - whole.pg_loss) > 1e-3
