"""The demo model: a tokenizer that survives AutoTokenizer, a Qwen2 that reloads exactly, ChatML."""

import unicodedata

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from or1_train.data.synthetic import chatml, corpus_for_tokenizer
from or1_train.model import (
    EOS_TOKEN,
    ModelInitConfig,
    count_parameters,
    init_model,
    load_model_and_tokenizer,
    train_tokenizer,
)

CORPUS = corpus_for_tokenizer(seed=0, n=600)
SAMPLES = [
    CORPUS[0],
    CORPUS[7],
    "Start with 17. Multiply by 3. What is the result?\nLet's think step by step",
    "<think>\n171 - 19 = 152\n152 / 8 = 19\n</think>\nThe answer is \\boxed{19}.",
    "Unseen: café naïve 日本語 ü\u0301 tabs\tand  double  spaces\n\n\nnewlines, 12345678 and I'll we've",
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return init_model(tmp_path_factory.mktemp("model") / "tiny", ModelInitConfig(), CORPUS)


def test_autotokenizer_round_trips_the_trained_tokenizer_exactly(model_dir):
    loaded = AutoTokenizer.from_pretrained(model_dir)
    saved = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    fresh = train_tokenizer(CORPUS, 512)  # training is deterministic: the same corpus gives the same ids
    for text in SAMPLES:
        ids = loaded(text, add_special_tokens=False).input_ids
        assert ids == saved.encode(text, add_special_tokens=False).ids
        assert ids == fresh(text, add_special_tokens=False).input_ids
    for text in SAMPLES[2:5]:  # decoding gives back the text, NFC-normalised like Qwen2's tokenizer does
        assert loaded.decode(loaded(text, add_special_tokens=False).input_ids) == unicodedata.normalize(
            "NFC", text
        )
    # the Qwen2 split regex keeps digits apart, so one arithmetic line is about ten tokens
    assert loaded.convert_ids_to_tokens(loaded("= 152", add_special_tokens=False).input_ids)[-3:] == [
        "1",
        "5",
        "2",
    ]


def test_special_tokens_padding_and_chat_template(model_dir):
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.eos_token == EOS_TOKEN and tok.pad_token == "<|pad|>" and tok.padding_side == "left"
    for special in ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"):
        assert tok(special, add_special_tokens=False).input_ids == [tok.convert_tokens_to_ids(special)]
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "What is 2 + 3?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
    assert text == expected + "<|im_start|>assistant\n"
    turn = messages + [{"role": "assistant", "content": "5"}]
    assert tok.apply_chat_template(turn, tokenize=False) == chatml(turn)
    batch = tok(["a", "a b c d"], padding=True, add_special_tokens=False)
    assert batch.input_ids[0][0] == tok.pad_token_id and batch.attention_mask[0][0] == 0


def test_model_config_loads_and_reloads_bit_exactly(model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = model.config
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert cfg.tie_word_embeddings is False
    assert cfg.hidden_size // cfg.num_attention_heads == 32
    assert (cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.intermediate_size) == (2, 1, 256)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert cfg.vocab_size == len(tok) and cfg.eos_token_id == tok.eos_token_id
    assert tok.eos_token_id in model.generation_config.eos_token_id
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)

    # Qwen2 with 1 kv head: embed + lm_head (V*H each); per layer q (H*H+H), k and v (H*32+32 each), o (H*H),
    # MLP (3*H*I), two norms (2H); a final norm (H).
    v, h, i = len(tok), 64, 256
    expected = 2 * v * h + 2 * (h * h + h + 2 * (h * 32 + 32) + h * h + 3 * h * i + 2 * h) + h
    assert count_parameters(model) == expected

    ids = tok(SAMPLES[:2], padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = model(**ids).logits
    model.save_pretrained(tmp_path / "again")
    tok.save_pretrained(tmp_path / "again")
    again, again_tok = load_model_and_tokenizer(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(again(**ids).logits, before)
    assert again_tok(SAMPLES[0]).input_ids == tok(SAMPLES[0]).input_ids


def test_init_is_seeded_and_leaves_the_global_rng_alone(model_dir, tmp_path):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    same = init_model(tmp_path / "same", ModelInitConfig(), CORPUS)
    assert torch.equal(torch.rand(1), expected_next)
    other = init_model(tmp_path / "other", ModelInitConfig(seed=1), CORPUS)
    weights = {p: AutoModelForCausalLM.from_pretrained(p).lm_head.weight for p in (model_dir, same, other)}
    assert torch.equal(weights[model_dir], weights[same])
    assert not torch.equal(weights[model_dir], weights[other])


def test_generation_stops_at_the_end_of_the_turn(model_dir):
    model, tok = load_model_and_tokenizer(model_dir)
    with torch.no_grad():  # force <|im_end|> to be the most likely token: generate must stop after it
        model.lm_head.bias = torch.nn.Parameter(torch.zeros(len(tok)))
        model.lm_head.bias[tok.eos_token_id] = 1e4
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    assert out[0, enc.input_ids.shape[1] :].tolist() == [tok.eos_token_id]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"num_heads": 4}, "num_heads"),  # head_dim 16: vLLM's CPU attention cannot run it
        ({"hidden_size": 96, "num_heads": 2}, "num_heads"),  # head_dim 48
        ({"hidden_size": 100}, "num_heads"),  # head_dim 50
        ({"num_heads": 2, "num_kv_heads": 3}, "num_kv_heads"),
        ({"num_layers": 0}, "num_layers"),
        ({"vocab_size": 100}, "vocab_size"),
    ],
)
def test_unsupported_shapes_are_refused_naming_the_field(tmp_path, fields, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        init_model(tmp_path / "bad", ModelInitConfig(**fields), CORPUS)
    assert not (tmp_path / "bad").exists()


def test_supported_wider_shapes():
    assert ModelInitConfig(hidden_size=128, num_heads=2).head_dim == 64
    ModelInitConfig(hidden_size=256, num_heads=4, num_kv_heads=2, intermediate_size=512).validate()
