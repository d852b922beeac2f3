"""Run specs as flat field paths: what the comparison dashboard diffs and groups by.

A path is written the way the spec's own error messages name fields: ``entropy.target``,
``stages[0].max_response_tokens``, ``data.sources[1].weight``. A list of plain values (``optim.betas``) is one
field; a list of sections (stages, sources) is indexed. The diff keeps only the paths whose values are not the
same in every run, a path missing from some spec included, so the table answers "what did these runs change?"
and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

MISSING = object()
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    """``{path: value}`` for every leaf of a spec, in the spec's own order."""
    out: dict[str, Any] = {}
    if isinstance(spec, dict) and spec:
        for key, value in spec.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(spec, list) and spec and all(isinstance(item, dict) for item in spec):
        for i, value in enumerate(spec):
            out.update(flatten(value, f"{prefix}[{i}]"))
    else:
        out[prefix] = spec
    return out


def value_at(spec: Any, path: str) -> Any:
    """The value at ``path`` (a leaf or a whole section), or MISSING."""
    current = spec
    for name, index in _TOKEN.findall(path):
        if name:
            if not isinstance(current, dict) or name not in current:
                return MISSING
            current = current[name]
        else:
            if not isinstance(current, list) or int(index) >= len(current):
                return MISSING
            current = current[int(index)]
    return current


def display(value: Any) -> str:
    """A value as the table shows it: JSON for everything but plain strings; an em dash when missing."""
    if value is MISSING:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def differing(specs: Sequence[dict]) -> list[tuple[str, list[Any]]]:
    """The paths whose values differ between the specs, each with its value per spec (MISSING if absent)."""
    flat = [flatten(spec) for spec in specs]
    paths: dict[str, None] = {}
    for f in flat:
        paths.update(dict.fromkeys(f))
    rows = []
    for path in paths:
        values = [f.get(path, MISSING) for f in flat]
        shown = {display(v) if v is not MISSING else None for v in values}
        if len(shown) > 1:
            rows.append((path, values))
    return rows


def table(rows: list[tuple[str, list[Any]]]) -> list[dict]:
    """Diff rows for a template: each cell's text, and whether it differs from the first run's value."""
    out = []
    for path, values in rows:
        texts = [display(v) for v in values]
        out.append({"path": path, "cells": [{"text": t, "changed": t != texts[0]} for t in texts]})
    return out
