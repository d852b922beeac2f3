"""The transformers `generate` rollout engine on the tiny model."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from or1_train.seeding import sample_seed


def seeds_for(n_prompts: int, n: int, run_seed: int = 0) -> list[list[int]]:
    return [[sample_seed(run_seed, 0, i * n + j) for j in range(n)] for i in range(n_prompts)]


def sample_tokens(out) -> list[list[int]]:
    return [s.token_ids for row in out for s in row]


def generate(engine, prompts, *, n=4, max_tokens=24, temperature=1.0, top_p=1.0, run_seed=0):
    return engine.generate(
        prompts,
        n=n,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seeds=seeds_for(len(prompts), n, run_seed),
    )


def max_logprob_gap(out, prompts, model, reference_logprobs, **processing) -> float:
    return max(
        abs(a - b)
        for prompt, row in zip(prompts, out)
        for s in row
        for a, b in zip(s.logprobs, reference_logprobs(model, prompt, s.token_ids, **processing))
    )


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from or1_train.rollout.base import make_engine
    from or1_train.rollout.hf import HfEngine

    eng = make_engine("hf", tiny_model_dir, dtype="float32", max_model_len=256, seed=0)
    assert isinstance(eng, HfEngine)
    yield eng
    eng.close()


def test_a_tiny_budget_cuts_every_response_at_length(engine, tiny_prompts):
    out = generate(engine, tiny_prompts[:3], n=2, max_tokens=4)
    assert [len(row) for row in out] == [2, 2, 2]
    for row in out:
        for s in row:
            assert s.finish_reason == "length"
            assert len(s.token_ids) == len(s.logprobs) == 4
            assert all(math.isfinite(lp) and lp <= 0.0 for lp in s.logprobs)


def test_stopped_responses_end_with_their_eos_and_the_rest_fill_the_budget(engine, tiny_prompts):
    out = generate(engine, tiny_prompts, n=8, max_tokens=40)
    samples = [s for row in out for s in row]
    stops = [s for s in samples if s.finish_reason == "stop"]
    assert 0 < len(stops) < len(samples)
    stop_ids = set(engine.stop_ids)
    assert engine.tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_ids
    for s in samples:
        if s.finish_reason == "stop":
            assert s.token_ids[-1] in stop_ids and not stop_ids & set(s.token_ids[:-1])
        else:
            assert len(s.token_ids) == 40 and not stop_ids & set(s.token_ids)
        assert len(s.logprobs) == len(s.token_ids)
        assert s.text == engine.tokenizer.decode(s.token_ids, skip_special_tokens=True)


def test_the_same_request_gives_the_same_samples_and_other_seeds_other_ones(engine, tiny_prompts):
    state = torch.get_rng_state()
    a = generate(engine, tiny_prompts[:3])
    assert torch.equal(torch.get_rng_state(), state), "the trainer's global RNG must not move"
    b = generate(engine, tiny_prompts[:3])
    c = generate(engine, tiny_prompts[:3], run_seed=1)
    assert sample_tokens(a) == sample_tokens(b)
    assert all(x != y for x, y in zip(sample_tokens(a), sample_tokens(c)))
    assert len({tuple(s.token_ids) for s in a[0]}) == 4


def test_sampled_logprobs_match_a_forward_pass_of_the_left_padded_rows(engine, tiny_prompts, reference_logprobs):
    prompts = tiny_prompts[:4]  # of different lengths, so all but the longest are left-padded
    assert len({len(p) for p in prompts}) > 1
    out = generate(engine, prompts)
    assert max_logprob_gap(out, prompts, engine.model, reference_logprobs) < 1e-4
    tempered = generate(engine, prompts, temperature=0.7, top_p=0.9)
    gap = max_logprob_gap(tempered, prompts, engine.model, reference_logprobs, temperature=0.7, top_p=0.9)
    assert gap < 1e-4
    assert max_logprob_gap(tempered, prompts, engine.model, reference_logprobs) > 0.1


def test_greedy_at_temperature_0_is_the_argmax_path(engine, tiny_prompts):
    out = generate(engine, tiny_prompts[:2], n=2, max_tokens=8, temperature=0.0)
    for prompt, row in zip(tiny_prompts[:2], out):
        assert row[0].token_ids == row[1].token_ids
        ids = list(prompt)
        for tok in row[0].token_ids:
            with torch.no_grad():
                assert tok == int(engine.model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(tok)


def test_sampling_ignores_the_checkpoints_generation_defaults(
    tiny_model_dir, tmp_path, tiny_prompts, reference_logprobs
):
    """Released checkpoints ship sampling defaults (Qwen: top_k 20, repetition_penalty 1.05); RL must not."""
    from or1_train.rollout.hf import HfEngine

    model_dir = tmp_path / "with_defaults"
    shutil.copytree(tiny_model_dir, model_dir)
    cfg_path = model_dir / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(do_sample=True, temperature=0.05, top_k=2, top_p=0.5, repetition_penalty=3.0, min_p=0.5)
    cfg_path.write_text(json.dumps(cfg))
    eng = HfEngine.from_pretrained(model_dir, dtype="float32", max_model_len=256, seed=0)
    out = generate(eng, tiny_prompts[:2])
    assert max_logprob_gap(out, tiny_prompts[:2], eng.model, reference_logprobs) < 1e-4


def test_an_engine_on_the_actors_own_model_follows_it_without_a_copy(tiny_model_dir, tiny_prompts, reference_logprobs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from or1_train.rollout.base import stop_token_ids
    from or1_train.rollout.hf import HfEngine

    actor = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    actor.train()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    eng = HfEngine(actor, tok, max_model_len=256, seed=0, stop_ids=stop_token_ids(tiny_model_dir, tok))
    before = generate(eng, tiny_prompts[:2])
    assert actor.training, "generate must give the model back in the mode it found it"
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    actor.eval()
    after = generate(eng, tiny_prompts[:2])
    assert sample_tokens(after) != sample_tokens(before)
    assert max_logprob_gap(after, tiny_prompts[:2], actor, reference_logprobs) < 1e-4


def test_update_weights_loads_the_actors_state(tiny_model_dir, tiny_prompts, reference_logprobs):
    from transformers import AutoModelForCausalLM

    from or1_train.rollout.hf import HfEngine

    eng = HfEngine.from_pretrained(tiny_model_dir, dtype="float32", max_model_len=256, seed=0)
    before = generate(eng, tiny_prompts[:2])
    trained = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    eng.sleep()
    eng.update_weights(trained.named_parameters())
    eng.wake_up()
    after = generate(eng, tiny_prompts[:2])
    assert max_logprob_gap(after, tiny_prompts[:2], trained, reference_logprobs) < 1e-4
    assert max_logprob_gap(before, tiny_prompts[:2], trained, reference_logprobs) > 0.1
    with pytest.raises(RuntimeError):  # a partial or misnamed state must not load silently
        eng.update_weights([("model.embed_tokens.weight", trained.model.embed_tokens.weight)])


def test_unknown_engines_and_oversized_requests_are_refused(engine, tiny_model_dir, tiny_prompts):
    from or1_train.rollout.base import make_engine

    with pytest.raises(ValueError, match="unknown rollout engine"):
        make_engine("sglang", tiny_model_dir, dtype="float32", max_model_len=256, seed=0)
    with pytest.raises(ValueError, match="max_model_len"):
        engine.generate(tiny_prompts[:1], n=1, max_tokens=256, temperature=1.0, top_p=1.0, seeds=[[1]])
