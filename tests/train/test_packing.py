"""Token-budget micro-batching gives the unpacked results (issue 8): packing changes the work, not the maths.

The torch engine packs each mini-batch by ``engine.max_tokens_per_micro_batch`` and normalises every
micro-batch by the whole mini-batch's counts, so for each aggregation mode the summed metrics and the
accumulated gradient equal one pass over the whole mini-batch (to float rounding: the sums run in another
order). The DeepSpeed engine's split across ranks is checked here too, without ranks.
"""

from __future__ import annotations

import pytest
import torch

from or1_train.distributed import balanced_split, shard_bounds
from or1_train.engine.base import MiniBatch, pack_by_tokens, response_mask
from or1_train.spec import EngineSpec, LossSpec, OptimSpec


def test_packing_keeps_order_respects_the_budget_and_isolates_long_samples():
    lengths = [5, 7, 3, 20, 4, 4, 9]
    batches = pack_by_tokens(lengths, 12)
    assert [i for b in batches for i in b] == list(range(len(lengths)))
    assert batches == [[0, 1], [2], [3], [4, 5], [6]]
    for b in batches:
        assert len(b) == 1 or sum(lengths[i] for i in b) <= 12
    assert pack_by_tokens(lengths, None) == [list(range(7))]
    assert pack_by_tokens([], 10) == [] and pack_by_tokens([], None) == []


def test_rank_shares_balance_tokens_and_cover_every_sample_once():
    lengths = [11, 11, 14, 15, 15, 13, 36]
    shares = balanced_split(lengths, 2)
    assert shares == [[1, 5, 6], [0, 2, 3, 4]]
    assert sorted(i for s in shares for i in s) == list(range(7))
    loads = [sum(lengths[i] for i in s) for s in shares]
    assert abs(loads[0] - loads[1]) <= max(lengths)
    assert balanced_split([3], 2) == [[0], []]
    assert [shard_bounds(10, 3, k) for k in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard_bounds(2, 4, k) for k in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]


def _actor(model_dir, aggregation: str, budget: int | None):
    from or1_train.engine.torch import TorchActor

    return TorchActor(
        model_dir,
        dtype="float32",
        optim=OptimSpec(lr=1e-3, weight_decay=0.0),
        loss=LossSpec(aggregation=aggregation),
        engine=EngineSpec(max_tokens_per_micro_batch=budget),
    )


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "token-sum-norm"])
def test_packed_micro_batches_give_the_unpacked_loss_metrics_and_gradient(tiny_model_dir, aggregation):
    g = torch.Generator().manual_seed(3)
    prompt_lengths, response_lengths = (6, 3, 9, 4, 7, 5), (10, 2, 7, 15, 1, 6)
    prompts = [torch.randint(3, 250, (n,), generator=g).tolist() for n in prompt_lengths]
    responses = [torch.randint(3, 250, (n,), generator=g).tolist() for n in response_lengths]
    whole, packed = _actor(tiny_model_dir, aggregation, None), _actor(tiny_model_dir, aggregation, 24)
    assert len(pack_by_tokens([p + r for p, r in zip(prompt_lengths, response_lengths)], 24)) == 4
    for actor in (whole, packed):
        actor.norm_constant = 16  # token-sum-norm: the stage's max response tokens
    lp_whole, ent_whole = whole.logprobs(prompts, responses, temperature=0.8, with_entropy=True)
    lp_packed, ent_packed = packed.logprobs(prompts, responses, temperature=0.8, with_entropy=True)
    assert torch.allclose(lp_whole, lp_packed, atol=1e-5) and torch.allclose(ent_whole, ent_packed, atol=1e-5)

    mask = response_mask(responses)
    old = (lp_whole + 0.3 * torch.randn(lp_whole.shape, generator=g)) * mask
    batch = MiniBatch(prompts, responses, old, torch.tensor([1.0, -0.5, 2.0, -1.0, 0.3, -2.0]), mask)
    m_whole = whole.train_mini_batch(batch, entropy_coef=0.02, temperature=0.8)
    m_packed = packed.train_mini_batch(batch, entropy_coef=0.02, temperature=0.8)
    assert m_whole["pg_clipfrac"] > 0
    # The packing itself is reported: four micro-batches with less padding than the one of all six samples.
    assert (m_whole["micro_batches"], m_packed["micro_batches"]) == (1.0, 4.0)
    assert 0.0 < m_packed["padding_ratio"] < m_whole["padding_ratio"]
    for name, value in m_whole.items():
        if name in ("micro_batches", "padding_ratio"):
            continue
        assert m_packed[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    for (name, p), q in zip(whole.model.named_parameters(), packed.model.parameters()):
        scale = p.grad.abs().max().clamp(min=1e-8)
        assert (p.grad - q.grad).abs().max() / scale < 1e-4, name
