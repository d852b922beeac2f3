"""The supervised warm start: the loss falls, a tiny model learns some level-1 problems, it is seeded."""

import random
import re

import pytest
import torch
from safetensors.torch import load_file

from or1_train.data.sources import read_source
from or1_train.data.synthetic import corpus_for_tokenizer, make_problem, write_dataset
from or1_train.distill import distill
from or1_train.model import ModelInitConfig, init_model, load_model_and_tokenizer


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory):
    return init_model(tmp_path_factory.mktemp("distill") / "init", ModelInitConfig(), corpus_for_tokenizer(0, 600))


def _greedy_accuracy(model_dir, level, n):
    model, tok = load_model_and_tokenizer(model_dir)
    problems = [make_problem(random.Random(1000 + i), level) for i in range(n)]
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": p.prompt}], tokenize=False, add_generation_prompt=True)
        for p in problems
    ]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc.input_ids.shape[1] :], skip_special_tokens=True)
    answers = [re.search(r"</think>\nThe answer is \\boxed\{(\d+)\}", t) for t in texts]
    return sum(bool(a) and a.group(1) == p.answer for a, p in zip(answers, problems)) / n, texts


@pytest.mark.slow
def test_loss_falls_and_greedy_decoding_solves_level_one_problems(fresh_model, tmp_path):
    data = write_dataset(tmp_path / "sft.jsonl", 2000, [1], seed=5, with_solutions=True)
    logged = []
    result = distill(fresh_model, data, tmp_path / "warm", steps=150, seed=0, log=logged.append)
    assert [r["step"] for r in logged] == list(range(1, 151))
    assert result["steps"] == 150 and result["examples"] == 2000 and result["truncated"] == 0
    assert result["initial_loss"] > 5.0  # ~ln(vocab): the random model knows nothing
    assert result["final_loss"] < 0.25 * result["initial_loss"]
    accuracy, texts = _greedy_accuracy(tmp_path / "warm", level=1, n=60)
    # (nearly) every answer has the worked form; the random-init model gets none right
    form = re.compile(r"<think>\n\d+ [-+*/] \d+ = \d+\n</think>\nThe answer is \\boxed\{\d+\}\.")
    assert sum(bool(form.fullmatch(t)) for t in texts) >= 0.9 * len(texts), texts[:5]
    assert accuracy >= 0.1, texts[:5]
    assert _greedy_accuracy(fresh_model, level=1, n=20)[0] == 0.0


def test_same_seed_same_weights_and_in_place_output(fresh_model, tmp_path):
    data = write_dataset(tmp_path / "sft.parquet", 64, (1, 2), seed=1, with_solutions=True)
    runs = []
    for name in ("a", "b"):
        model_dir = tmp_path / name
        init_model(model_dir, ModelInitConfig(), corpus_for_tokenizer(0, 600))
        runs.append(distill(model_dir, data, model_dir, steps=4, batch_size=4, seed=3))  # out_dir == model_dir
    assert runs[0]["final_loss"] == runs[1]["final_loss"]
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = load_file(fresh_model / "model.safetensors")
    assert not torch.equal(a["lm_head.weight"], before["lm_head.weight"])
    assert not any(p.name.endswith("distill-tmp") for p in tmp_path.iterdir())
    other = distill(tmp_path / "a", data, tmp_path / "c", steps=4, batch_size=4, seed=4)
    assert other["final_loss"] != runs[0]["final_loss"]


def test_long_solutions_are_cut_and_overlong_prompts_skipped(fresh_model, tmp_path):
    data = write_dataset(tmp_path / "long.jsonl", 8, [8], seed=2, with_solutions=True)
    _, tok = load_model_and_tokenizer(fresh_model)
    lengths = [
        len(tok(tok.apply_chat_template(e.prompt, tokenize=False, add_generation_prompt=True)).input_ids)
        for e in read_source(data).examples
    ]
    max_length = sorted(lengths)[3] + 2  # about half the prompts fit, each with room for a short response
    kept = [n for n in lengths if n < max_length]
    result = distill(fresh_model, data, tmp_path / "out", steps=1, batch_size=len(kept), max_length=max_length)
    assert result["examples"] == len(kept) and result["truncated"] == 8
    assert result["tokens"] == sum(max_length - n for n in kept)  # every kept response cut to fit exactly


def test_rows_without_solutions_are_refused(fresh_model, tmp_path):
    data = write_dataset(tmp_path / "eval.jsonl", 8, [1], seed=2)
    with pytest.raises(ValueError, match="solution"):
        distill(fresh_model, data, tmp_path / "out", steps=1)
