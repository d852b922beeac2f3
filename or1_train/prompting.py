"""Turn an example's chat messages into the prompt token ids every engine sees (the model's chat template)."""

from __future__ import annotations

from or1_train.data.schema import Example


def encode_prompt(tokenizer, example: Example) -> list[int]:
    """Chat-template the prompt with the generation prompt appended, as OR1's dataset loader does."""
    ids = tokenizer.apply_chat_template(example.prompt, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)
