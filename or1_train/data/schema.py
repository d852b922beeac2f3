"""The one row shape the trainer reads, and the rules that turn a raw dataset row into it.

Real RL data comes in a few shapes: OR1's released parquet (`prompt` as chat messages, the answer under
`reward_model.ground_truth`, often a JSON-encoded list), plain `{"prompt": str, "ground_truth": str}` JSONL,
and Hugging Face datasets. `parse_row` accepts all of them and refuses anything it cannot use with a
`MalformedRow` whose `reason` is a short fixed key, so a reader can count bad rows by kind instead of
crashing on the first one or silently training on garbage.

No torch here: the platform validates uploaded datasets with this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ABILITIES = ("math", "code")
_KNOWN_KEYS = {"uid", "id", "prompt", "ground_truth", "reward_model", "ability", "data_source", "extra_info"}


class MalformedRow(ValueError):
    """A row that cannot become an `Example`. `reason` is a stable key for counting; the message explains."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Example:
    uid: str
    prompt: list[dict]
    ground_truth: str
    ability: str = "math"
    data_source: str = ""
    extra: dict = field(default_factory=dict)


def _text(value: Any, what: str) -> str:
    """A str that is valid Unicode; bytes are decoded as UTF-8 (parquet binary columns arrive as bytes)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedRow("bad_text", f"{what} is not valid UTF-8") from e
    if not isinstance(value, str):
        raise MalformedRow("bad_type", f"{what} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates, e.g. from a JSON "\ud800" escape
        raise MalformedRow("bad_text", f"{what} is not encodable text") from e
    return value


def _prompt(value: Any) -> list[dict]:
    if value is None:
        raise MalformedRow("missing_prompt", "no prompt field")
    if isinstance(value, (str, bytes)):
        messages = [{"role": "user", "content": _text(value, "prompt")}]
    elif isinstance(value, (list, tuple)):
        messages = []
        for i, message in enumerate(value):
            if not isinstance(message, dict):
                raise MalformedRow("bad_type", f"prompt[{i}] must be a {{role, content}} object")
            if "role" not in message or "content" not in message:
                raise MalformedRow("bad_type", f"prompt[{i}] needs both role and content")
            role = _text(message["role"], f"prompt[{i}].role")
            if not role:
                raise MalformedRow("bad_type", f"prompt[{i}].role is empty")
            messages.append({"role": role, "content": _text(message["content"], f"prompt[{i}].content")})
    else:
        raise MalformedRow(
            "bad_type", f"prompt must be a string or a list of messages, got {type(value).__name__}"
        )
    if not any(m["content"].strip() for m in messages):
        raise MalformedRow("empty_prompt", "prompt has no text")
    return messages


def _ground_truth(row: dict) -> str:
    """Top-level `ground_truth`, else OR1's `reward_model.ground_truth`.

    A string is kept exactly as given (OR1 stores a JSON-encoded list of acceptable answers; the verifier
    decodes it). An int is a plain answer. A list or dict (code tests stored natively by parquet) is
    JSON-encoded so the verifier always receives a string. Anything else is ambiguous and refused.
    """
    value = row.get("ground_truth")
    if value is None:
        reward_model = row.get("reward_model")
        if reward_model is not None and not isinstance(reward_model, dict):
            raise MalformedRow("bad_type", "reward_model must be an object")
        value = (reward_model or {}).get("ground_truth")
    if value is None:
        raise MalformedRow("missing_answer", "no ground_truth or reward_model.ground_truth")
    if isinstance(value, bool):
        raise MalformedRow("bad_type", "ground_truth must be a string, got bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    text = _text(value, "ground_truth")
    if not text.strip():
        raise MalformedRow("missing_answer", "ground_truth is empty")
    return text


def _uid(row: dict, source_name: str, index: int) -> str:
    """A `uid` field is taken verbatim (the author chose it); an `id` is scoped by the source name, because
    two datasets numbering rows 0..N would otherwise collide in the mix; else a hash of (source, index)."""
    for key in ("uid", "id"):
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise MalformedRow("bad_type", f"{key} must be a string or an int")
        return str(value) if key == "uid" else f"{source_name}/{value}"
    return hashlib.blake2b(f"{source_name}\x00{index}".encode(), digest_size=8).hexdigest()


def parse_row(row: Any, source_name: str, index: int) -> Example:
    """Turn one raw row into an `Example` or raise `MalformedRow(reason)`.

    `extra` holds `extra_info` (when it is an object) plus every top-level field this schema does not know,
    e.g. the synthetic task's `solution`, so nothing a dataset carries is lost.
    """
    if not isinstance(row, dict):
        raise MalformedRow("bad_type", f"row must be an object, got {type(row).__name__}")
    prompt = _prompt(row.get("prompt"))
    ground_truth = _ground_truth(row)
    ability = row.get("ability")
    ability = "math" if ability is None else _text(ability, "ability")
    if ability not in ABILITIES:
        raise MalformedRow("bad_ability", f"ability must be one of {ABILITIES}, got {ability!r}")
    data_source = row.get("data_source")
    data_source = (None if data_source is None else _text(data_source, "data_source")) or source_name
    extra_info = row.get("extra_info")
    if extra_info is not None and not isinstance(extra_info, dict):
        raise MalformedRow("bad_type", "extra_info must be an object")
    extra = dict(extra_info or {})
    extra.update({k: v for k, v in row.items() if k not in _KNOWN_KEYS})
    return Example(
        uid=_uid(row, source_name, index),
        prompt=prompt,
        ground_truth=ground_truth,
        ability=ability,
        data_source=data_source,
        extra=extra,
    )
