"""The vLLM rollout engine on the tiny model: one real in-process engine shared by the module."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from or1_train.seeding import sample_seed

pytestmark = pytest.mark.vllm


def seeds_for(n_prompts: int, n: int, run_seed: int = 0) -> list[list[int]]:
    return [[sample_seed(run_seed, 0, i * n + j) for j in range(n)] for i in range(n_prompts)]


def sample_tokens(out) -> list[list[int]]:
    return [s.token_ids for row in out for s in row]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from or1_train.rollout.base import make_engine
    from or1_train.rollout.vllm import VllmEngine

    eng = make_engine("vllm", tiny_model_dir, dtype="float32", max_model_len=256, seed=0)
    assert isinstance(eng, VllmEngine)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def actor(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def generate(engine, prompts, *, n=4, max_tokens=32, temperature=1.0, top_p=1.0, run_seed=0):
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


def test_a_tiny_budget_cuts_every_response_at_length(engine, tiny_prompts):
    out = generate(engine, tiny_prompts[:4], n=3, max_tokens=4)
    assert [len(row) for row in out] == [3, 3, 3, 3]
    for row in out:
        for s in row:
            assert s.finish_reason == "length"
            assert len(s.token_ids) == len(s.logprobs) == 4
            assert all(math.isfinite(lp) and lp <= 0.0 for lp in s.logprobs)


def test_stopped_responses_end_with_their_eos_and_the_rest_fill_the_budget(engine, tiny_prompts):
    out = generate(engine, tiny_prompts, n=8, max_tokens=48)
    samples = [s for row in out for s in row]
    stops = [s for s in samples if s.finish_reason == "stop"]
    assert 0 < len(stops) < len(samples)
    stop_ids = set(engine.stop_ids)
    assert engine.tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_ids
    for s in samples:
        if s.finish_reason == "stop":
            assert s.token_ids[-1] in stop_ids
            assert not stop_ids & set(s.token_ids[:-1])
        else:
            assert len(s.token_ids) == 48 and not stop_ids & set(s.token_ids)
        assert len(s.logprobs) == len(s.token_ids)
        assert s.text == engine.tokenizer.decode(s.token_ids, skip_special_tokens=True)


def test_the_same_seeds_give_the_same_samples_and_other_seeds_other_ones(engine, tiny_prompts):
    a = generate(engine, tiny_prompts[:4])
    b = generate(engine, tiny_prompts[:4])
    c = generate(engine, tiny_prompts[:4], run_seed=1)
    assert sample_tokens(a) == sample_tokens(b)
    assert [s.logprobs for row in a for s in row] == [s.logprobs for row in b for s in row]
    assert all(x != y for x, y in zip(sample_tokens(a), sample_tokens(c)))
    # the n samples of one prompt differ from each other too
    assert len({tuple(s.token_ids) for s in a[0]}) == 4


def test_a_sample_depends_on_its_seed_not_on_the_rest_of_the_batch(engine, tiny_prompts):
    full = generate(engine, tiny_prompts[:4])
    seed = seeds_for(4, 4)[2][3]
    alone = engine.generate([tiny_prompts[2]], n=1, max_tokens=32, temperature=1.0, top_p=1.0, seeds=[[seed]])
    assert alone[0][0].token_ids == full[2][3].token_ids


def test_sampled_logprobs_match_the_actor_forward_pass_at_temperature_1(
    engine, actor, tiny_prompts, reference_logprobs
):
    out = generate(engine, tiny_prompts[:4])
    assert max_logprob_gap(out, tiny_prompts[:4], actor, reference_logprobs) < 1e-4


def test_sampled_logprobs_are_those_of_the_tempered_nucleus(engine, actor, tiny_prompts, reference_logprobs):
    prompts = tiny_prompts[:4]
    out = generate(engine, prompts, temperature=0.7, top_p=0.9)
    assert max_logprob_gap(out, prompts, actor, reference_logprobs, temperature=0.7, top_p=0.9) < 1e-4
    # ... and not the raw model's, which the default vLLM logprobs mode would have returned
    assert max_logprob_gap(out, prompts, actor, reference_logprobs) > 0.1


def test_update_weights_makes_the_engine_follow_the_actor(engine, tiny_model_dir, tiny_prompts, reference_logprobs):
    from transformers import AutoModelForCausalLM

    prompts = tiny_prompts[:4]
    before = generate(engine, prompts)
    trained = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    original = {k: v.clone() for k, v in trained.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)

    engine.sleep()  # no-ops on a CPU; the trainer calls them around every update
    engine.update_weights(trained.named_parameters())
    engine.wake_up()
    after = generate(engine, prompts)
    # Noise of 0.5 makes large logits, where float32 kernels that sum in another order differ by a few 1e-4
    # (2.6e-4 seen in CI); stale weights would be off by more than 0.1.
    assert max_logprob_gap(after, prompts, trained, reference_logprobs) < 1e-3
    assert max_logprob_gap(before, prompts, trained, reference_logprobs) > 0.1
    assert sample_tokens(after) != sample_tokens(before)

    engine.update_weights(original.items())
    assert sample_tokens(generate(engine, prompts)) == sample_tokens(before)


def test_requests_that_do_not_fit_are_refused(engine, tiny_prompts):
    with pytest.raises(ValueError, match="max_model_len"):
        engine.generate(tiny_prompts[:1], n=1, max_tokens=256, temperature=1.0, top_p=1.0, seeds=[[1]])
    with pytest.raises(ValueError, match="seeds"):
        engine.generate(tiny_prompts[:2], n=2, max_tokens=4, temperature=1.0, top_p=1.0, seeds=[[1, 2]])


WORKER_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM
    from or1_train.rollout.vllm import VllmEngine

    def main(model_dir, prompt):
        engine = VllmEngine(model_dir, dtype="float32", max_model_len=128, seed=0, in_process=False)
        actor = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            for p in actor.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
        engine.update_weights(actor.state_dict().items())
        s = engine.generate([prompt], n=1, max_tokens=16, temperature=1.0, top_p=1.0, seeds=[[7]])[0][0]
        ids = torch.tensor([prompt + s.token_ids])
        with torch.no_grad():
            lp = torch.log_softmax(actor(ids).logits[0, len(prompt) - 1 : -1], -1)
        ref = lp.gather(1, torch.tensor(s.token_ids)[:, None]).squeeze(1)
        gap = (ref - torch.tensor(s.logprobs)).abs().max().item()
        engine.close()
        print("RESULT " + json.dumps({"gap": gap, "tokens": len(s.token_ids)}))

    if __name__ == "__main__":
        main(sys.argv[1], json.loads(sys.argv[2]))
    """
)


@pytest.mark.slow
def test_a_multiprocess_engine_syncs_weights_through_a_file(tiny_model_dir, tiny_prompts, tmp_path):
    """The tensor-parallel route (worker processes), run with one worker: vLLM caches its environment per
    process, so it runs in a fresh interpreter."""
    script = tmp_path / "mp_engine.py"
    script.write_text(WORKER_PROCESS_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir), json.dumps(tiny_prompts[0])],
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["tokens"] > 0 and result["gap"] < 1e-4
