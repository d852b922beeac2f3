"""Skywork-OR1-RL-Data: find it locally (a path or a Hub id in the local cache) and filter it by difficulty.

The released preprocessing (`download_and_filter_data_{1p5b,7b,32b}.py`, dossier §4.2) keeps a row when
`extra_info.model_difficulty[<base model>]` lies in [1, 15]: the base model solved it at least once and not
every time. `filter_by_difficulty` does exactly that for any model and range, and counts what it drops, so
the trainer can log how much of the data a base model keeps (46% math for R1-Distill-Qwen-7B in the paper).

The Hub cannot be reached from the machines this runs on, so a dataset id (`Skywork/Skywork-OR1-RL-Data`,
optionally `:math` or `:code` for one split) is looked up only in the local Hugging Face hub cache; when it
is not there the error names the id and where it looked, instead of hanging on a download.

No torch here (the platform imports this to validate datasets).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from or1_train.data.schema import Example
from or1_train.data.sources import SourceData, read_source
from or1_train.spec import DataSource, DifficultyFilter, EvalSet

DIFFICULTY_KEY = "model_difficulty"
OR1_DATASET_ID = "Skywork/Skywork-OR1-RL-Data"
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<split>[\w.-]+))?$")


def hub_cache_dir() -> Path:
    """Where `huggingface_hub` keeps downloads: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def resolve_dataset(path: str) -> str:
    """A local path (or glob) unchanged; a Hub dataset id `owner/name[:split]` as its cached snapshot.

    A split picks that split's shards (`data/<split>-*.parquet`, the Hub's parquet layout), so the math and
    code splits of OR1's data can be mixed with their own weights.
    """
    match = _HUB_ID.match(path)
    if Path(path).exists() or any(c in path for c in "*?[") or not match:
        return path
    repo, split = match["repo"], match["split"]
    cache = hub_cache_dir() / f"datasets--{repo.replace('/', '--')}" / "snapshots"
    snapshots = sorted(cache.glob("*"), key=lambda p: p.stat().st_mtime) if cache.is_dir() else []
    if not snapshots:
        raise FileNotFoundError(
            f"dataset {repo!r} is neither a local path nor in the Hugging Face cache ({cache}); the Hub "
            f"cannot be reached here: download it elsewhere (`huggingface-cli download --repo-type dataset "
            f"{repo}`) and copy the cache or the parquet files to this machine"
        )
    snapshot = snapshots[-1]
    if split is None:
        return str(snapshot)
    shards = sorted(snapshot.rglob(f"{split}-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"dataset {repo!r}: no {split}-*.parquet shards in {snapshot}")
    return str(snapshot / "**" / f"{split}-*.parquet")


def difficulty_of(example: Example, model: str) -> int | None:
    """The row's offline difficulty for `model`, or None when the row has none for it.

    `model_difficulty` is a struct in OR1's parquet, an object in JSONL, and sometimes a JSON string.
    """
    table = example.extra.get(DIFFICULTY_KEY)
    if isinstance(table, str):
        try:
            table = json.loads(table)
        except json.JSONDecodeError:
            return None
    if not isinstance(table, dict):
        return None
    value = table.get(model)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def known_models(examples: Iterable[Example]) -> set[str]:
    """Base models named in any row's `model_difficulty` (for an error that suggests the right name)."""
    names: set[str] = set()
    for example in examples:
        table = example.extra.get(DIFFICULTY_KEY)
        if isinstance(table, str):
            try:
                table = json.loads(table)
            except json.JSONDecodeError:
                continue
        if isinstance(table, dict):
            names.update(k for k, v in table.items() if v is not None)
    return names


def filter_by_difficulty(data: SourceData, flt: DifficultyFilter) -> tuple[SourceData, Counter]:
    """Keep the examples whose difficulty for `flt.model` is in [flt.min, flt.max]; return them and drop counts.

    The counts are keyed "below_min", "above_max" and "no_difficulty". OR1's card calls the number a 0-16
    difficulty (16 rollouts per problem) and the released filter keeps [1, 15], dropping the problems the
    base model solved never or every time, whichever end of the scale is which. A model that no row knows
    is an error: a typo in the model name would otherwise drop the whole dataset in silence.
    """
    if flt.min > flt.max:
        raise ValueError(f"difficulty: min {flt.min} is above max {flt.max}")
    kept, dropped = [], Counter()
    for example in data.examples:
        value = difficulty_of(example, flt.model)
        if value is None:
            dropped["no_difficulty"] += 1
        elif value < flt.min:
            dropped["below_min"] += 1
        elif value > flt.max:
            dropped["above_max"] += 1
        else:
            kept.append(example)
    if data.examples and dropped["no_difficulty"] == len(data.examples):
        models = sorted(known_models(data.examples))
        raise ValueError(
            f"{data.name}: no row has {DIFFICULTY_KEY}[{flt.model!r}]"
            + (f"; the data knows {models}" if models else "; the data carries no difficulties")
        )
    out = SourceData(name=data.name, examples=kept, skipped=data.skipped, error_samples=data.error_samples)
    return out, dropped


def read_data_source(source: DataSource) -> tuple[SourceData, Counter]:
    """What the trainer reads for one `data.sources[i]`: the rows, difficulty-filtered when the spec says so.

    Returns (data, dropped-by-filter counts; empty without a filter).
    """
    data = read_source(resolve_dataset(source.path), source.format, name=source.display_name)
    if source.difficulty is None:
        return data, Counter()
    return filter_by_difficulty(data, source.difficulty)


def read_eval_set(eval_set: EvalSet) -> list[Example]:
    """What the trainer and `or1-train eval` evaluate for one `evaluation.sets[i]` (its first `limit` problems).

    A `livecodebench` set is a local LiveCodeBench copy cut to the set's date window (the spec fills in the
    paper's when none is given); every other format goes through `read_source`.
    """
    path = resolve_dataset(eval_set.path)
    if eval_set.format == "livecodebench":
        from or1_train.data.livecodebench import read_livecodebench

        start, end = eval_set.window
        data, _ = read_livecodebench(path, start=start, end=end, name=eval_set.name)
    else:
        data = read_source(path, eval_set.format, name=eval_set.name)
    return data.examples[: eval_set.limit] if eval_set.limit else data.examples


def example_to_row(example: Example) -> dict:
    """An `Example` back in OR1's row layout, so a written dataset reads back through `parse_row` unchanged."""
    return {
        "uid": example.uid,
        "data_source": example.data_source,
        "prompt": example.prompt,
        "ability": example.ability,
        "reward_model": {"ground_truth": example.ground_truth, "style": "rule"},
        "extra_info": example.extra,
    }


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write examples as OR1-layout JSONL (atomically: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example_to_row(example), ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
    return path
