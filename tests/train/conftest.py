"""Shared fixtures for the trainer tests.

`tiny_model_dir` builds, once per session, the demo-size model the rollout tests run on, with the trainer's
own `init_model`: a random-init Qwen2 (hidden 64, 2 layers, 2 heads so head_dim is 32, which vLLM's CPU
attention accepts; untied embeddings) and a BPE tokenizer trained on the synthetic task's text, eos
`<|im_end|>`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from or1_train.data.synthetic import corpus_for_tokenizer
    from or1_train.model import ModelInitConfig, init_model

    out = tmp_path_factory.mktemp("tiny_model") / "model"
    config = ModelInitConfig(hidden_size=64, num_layers=2, num_heads=2)
    return init_model(out, config, corpus_for_tokenizer(0, 2000))


@pytest.fixture(scope="session")
def tiny_prompts(tiny_model_dir) -> list[list[int]]:
    """Eight chat-templated synthetic problems of different lengths, as token ids."""
    import random

    from transformers import AutoTokenizer

    from or1_train.data.synthetic import make_problem

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rng = random.Random(0)
    prompts = []
    for level in range(1, 9):
        messages = [{"role": "user", "content": make_problem(rng, level).prompt}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        prompts.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return prompts


@pytest.fixture(scope="session")
def reference_logprobs():
    """log p(response token) from a plain forward pass of an HF model, under temperature and top-p.

    This is what the actor computes; the engines' sampled-token log-probs must agree with it.
    """
    import torch
    from transformers import TopPLogitsWarper

    def compute(model, prompt, response, temperature=1.0, top_p=1.0) -> list[float]:
        ids = torch.tensor([list(prompt) + list(response)])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature
        if top_p < 1.0:
            logits = TopPLogitsWarper(top_p)(None, logits)
        lp = torch.log_softmax(logits, dim=-1)
        return lp.gather(1, torch.tensor(response)[:, None]).squeeze(1).tolist()

    return compute
