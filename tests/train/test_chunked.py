"""The chunked log-prob head equals the naive full-logits computation, values and gradients (issue 8).

The naive reference is what the torch engine did before: one forward of the whole causal LM, every
position's logits, then the positions that predict response tokens. Chunk sizes of 1, an odd 7, and larger
than the batch all have to give the same numbers.
"""

from __future__ import annotations

import pytest
import torch

from or1_train.algo.losses import entropy_from_logits, logprobs_from_logits
from or1_train.engine.chunked import check_plain_head, head_logprobs, padded_inputs, response_logprobs


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():  # a random model's logits are nearly flat; spread them so entropy varies
        m.lm_head.weight.mul_(20.0)
    return m


@pytest.fixture(scope="module")
def batch(tiny_prompts, model):
    gen = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    prompts = tiny_prompts[:5]
    responses = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in (9, 1, 17, 4, 12)]
    return prompts, responses


def naive(model, prompts, responses, temperature):
    input_ids, attention = padded_inputs(prompts, responses, model.config.pad_token_id)
    logits = model(input_ids=input_ids, attention_mask=attention).logits
    width = max(len(r) for r in responses)
    lp = torch.zeros(len(responses), width)
    ent = torch.zeros(len(responses), width)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        rows = logits[i, len(p) - 1 : len(p) - 1 + len(r)] / temperature
        where = (torch.full((len(r),), i), torch.arange(len(r)))
        lp = lp.index_put(where, logprobs_from_logits(rows, torch.tensor(r)))
        ent = ent.index_put(where, entropy_from_logits(rows))
    return lp, ent


def grads_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk_tokens", [1, 7, 10_000])
def test_chunked_equals_naive_values_and_gradients(model, batch, chunk_tokens):
    prompts, responses = batch
    temperature = 0.7
    weights = torch.linspace(-1.0, 2.0, 17)  # tokens weigh differently: every gradient path counts

    ref_lp, ref_ent = naive(model, prompts, responses, temperature)
    ref_loss = (ref_lp * weights[: ref_lp.shape[1]]).sum() + 0.3 * ref_ent.sum()
    ref_grads = grads_of(model, ref_loss)

    lp, ent = response_logprobs(
        model,
        prompts,
        responses,
        temperature=temperature,
        with_entropy=True,
        pad_id=0,
        device="cpu",
        chunk_tokens=chunk_tokens,
    )
    assert lp.shape == ref_lp.shape == (5, 17)
    assert torch.allclose(lp, ref_lp, atol=2e-5, rtol=0), (lp - ref_lp).abs().max()
    assert torch.allclose(ent, ref_ent, atol=2e-5, rtol=0), (ent - ref_ent).abs().max()
    spread = ref_ent.detach()[ref_ent > 0]
    assert float(spread.max() - spread.min()) > 0.1, "entropies should differ between tokens"
    loss = (lp * weights[: lp.shape[1]]).sum() + 0.3 * ent.sum()
    grads = grads_of(model, loss)
    assert grads.keys() == ref_grads.keys() and len(grads) == len(list(model.parameters()))
    for name, g in grads.items():
        scale = ref_grads[name].abs().max().clamp(min=1e-6)
        assert ((g - ref_grads[name]).abs().max() / scale) < 1e-4, name


def test_padding_positions_are_zero_and_prompt_padding_does_not_leak(model, batch):
    prompts, responses = batch
    with torch.no_grad():
        lp, ent = response_logprobs(
            model,
            prompts,
            responses,
            temperature=1.0,
            with_entropy=True,
            pad_id=0,
            device="cpu",
            chunk_tokens=5,
        )
        alone, _ = response_logprobs(
            model, prompts[1:2], responses[1:2], temperature=1.0, with_entropy=False, pad_id=0, device="cpu"
        )
    assert lp[1, 1:].abs().sum() == 0 and ent[1, 1:].abs().sum() == 0
    assert torch.allclose(lp[1, :1], alone[0], atol=1e-5), "a sample's log-probs must not depend on its batch"
    assert (lp[0, :9] < 0).all()


def test_without_entropy_and_empty_input(model):
    hidden = torch.zeros(0, model.config.hidden_size)
    lp, ent = head_logprobs(
        model.lm_head, hidden, torch.zeros(0, dtype=torch.long), temperature=1.0, with_entropy=False
    )
    assert lp.shape == (0,) and ent is None
    with pytest.raises(ValueError, match="chunk_tokens"):
        head_logprobs(
            model.lm_head,
            hidden,
            torch.zeros(0, dtype=torch.long),
            temperature=1.0,
            with_entropy=False,
            chunk_tokens=0,
        )


def test_models_with_scaled_logits_are_refused():
    from transformers import Qwen2Config

    check_plain_head(Qwen2Config())
    config = Qwen2Config()
    config.final_logit_softcapping = 30.0
    with pytest.raises(NotImplementedError, match="final_logit_softcapping"):
        check_plain_head(config)
