"""Recipe templates the editor starts from: the example specs in ``settings.OR1_EXAMPLES_DIR``.

The files are read on each request (there are a handful of small ones), so an example edited on disk is what
the next new experiment starts from. A file's title is the first line of its leading comment up to the colon
(``# CPU demo: the whole ...`` -> "CPU demo"); its spec's ``name`` identifies it in URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    description: str
    spec: dict[str, Any]


def _title(text: str, fallback: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.startswith("#"):
        return fallback
    return first.lstrip("# ").split(":", 1)[0].strip() or fallback


def recipes(directory: Path | None = None) -> list[Recipe]:
    """Every readable example spec, in file-name order; files that are not a YAML mapping are skipped."""
    directory = Path(directory or settings.OR1_EXAMPLES_DIR)
    out = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            text = path.read_text(encoding="utf-8")
            spec = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(spec, dict):
            continue
        name = str(spec.get("name") or path.stem)
        out.append(Recipe(name, _title(text, name), str(spec.get("description") or ""), spec))
    return out


def recipe(name: str) -> Recipe | None:
    return next((r for r in recipes() if r.name == name), None)
