"""Build, load and measure the policy model.

`init_model` makes the CPU demo's model from nothing: a byte-level BPE tokenizer trained on the synthetic
task's text and a random Qwen2 transformer, saved in ordinary Hugging Face format so that transformers, vLLM
and DeepSpeed load it exactly as they would a downloaded checkpoint. Three details make that true:

- The tokenizer is trained with exactly Qwen2's normalizer (NFC) and pre-tokenizer (its split regex, then
  byte-level). transformers 5 forces `Qwen2Tokenizer` for `model_type: qwen2` and rebuilds those two pieces
  on load, so any other pre-tokenizer would silently tokenize differently after a reload.
- head_dim = hidden_size / num_heads must be one vLLM's CPU attention backend runs; checked up front.
- Embeddings are untied: vLLM's in-place weight reload after each update leaves a tied lm_head stale.

eos is `<|im_end|>` so that generation stops at the end of the assistant's turn, as the chat template ends
each turn with it. torch and transformers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")
EOS_TOKEN, PAD_TOKEN, EOT_TOKEN = "<|im_end|>", "<|pad|>", "<|endoftext|>"
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# ChatML, the same text `or1_train.data.synthetic.chatml` writes for the tokenizer corpus.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelInitConfig:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    intermediate_size: int | None = None  # None: 4 * hidden_size, the usual transformer MLP ratio
    max_positions: int = 512
    vocab_size: int = 512  # an upper bound: BPE stops early when no merge is left (digits never merge)
    seed: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_size(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size

    def validate(self) -> None:
        """Raise ValueError naming the field, before any time is spent training a tokenizer."""
        for name, value in asdict(self).items():
            if name != "seed" and value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads: {self.num_heads} does not divide hidden_size {self.hidden_size}")
        if self.head_dim not in VLLM_CPU_HEAD_DIMS:
            raise ValueError(
                f"num_heads: hidden_size / num_heads = {self.head_dim} is a head size vLLM's CPU backend "
                f"cannot run (allowed: {', '.join(map(str, VLLM_CPU_HEAD_DIMS))})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads: {self.num_kv_heads} does not divide num_heads {self.num_heads}")
        if self.vocab_size <= len(SPECIAL_TOKENS) + 256:
            raise ValueError(
                f"vocab_size: must exceed the 256 byte tokens and the specials, got {self.vocab_size}"
            )


def train_tokenizer(corpus: list[str], vocab_size: int):
    """A byte-level BPE with Qwen2's normalizer and pre-tokenizer, wrapped for transformers."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not corpus:
        raise ValueError("corpus: the tokenizer needs some text to train on")
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, padding_side="left"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def init_model(out_dir: str | Path, config: ModelInitConfig, corpus: list[str]) -> Path:
    """Train the tokenizer on `corpus`, build a random Qwen2 model (seeded) and save both to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    config.validate()
    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    tokenizer.model_max_length = config.max_positions
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    eot_id = tokenizer.convert_tokens_to_ids(EOT_TOKEN)
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.mlp_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        bos_token_id=eot_id,
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():  # seed the init without disturbing the caller's RNG stream
        torch.manual_seed(config.seed)
        model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    # Stop on the end of the turn, and on <|endoftext|> should a model emit it.
    model.generation_config = GenerationConfig(
        bos_token_id=eot_id, eos_token_id=[eos_id, eot_id], pad_token_id=tokenizer.pad_token_id
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def torch_dtype(name: str) -> torch.dtype:
    import torch

    if name not in _DTYPES:
        raise ValueError(f"dtype: must be one of {_DTYPES}, got {name!r}")
    return getattr(torch, name)


def load_model_and_tokenizer(
    path: str | Path, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Any local Hugging Face causal LM directory, in eval mode, with a tokenizer ready for batched
    generation: left padding (so every prompt ends where generation starts) and a pad token (eos if none)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def count_parameters(model) -> int:
    """Distinct parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters())
