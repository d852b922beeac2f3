"""Read a dataset source (JSONL, Parquet, or a local Hugging Face dataset directory) into `Example`s.

A bad row never stops a run: it is skipped and counted by reason (`SourceData.skipped`), with the first few
messages kept for the person who has to fix the file. A bad *file* (unknown format, unreadable parquet) is
an error naming the path, because nothing sensible can be trained from it.

Hugging Face directories are read with `pyarrow.ipc` (the stream format `Dataset.save_to_disk` writes), so the
`datasets` package is not needed on the trainer or the web host.
"""

from __future__ import annotations

import glob
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from or1_train.data.schema import Example, MalformedRow, parse_row

# "or1" names OR1's released parquet files; `parse_row` already reads their schema, so it is parquet here.
FORMATS = ("auto", "jsonl", "parquet", "hf", "or1")
_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_MAX_ERROR_SAMPLES = 20


@dataclass
class SourceData:
    name: str
    examples: list[Example]
    skipped: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)  # "row 17: missing_answer: ...", first few only


class _Collector:
    """Parses rows one by one, keeping the good ones and counting the bad ones."""

    def __init__(self, name: str):
        self.data = SourceData(name=name, examples=[])

    def skip(self, index: int, reason: str, message: str) -> None:
        self.data.skipped[reason] += 1
        if len(self.data.error_samples) < _MAX_ERROR_SAMPLES:
            self.data.error_samples.append(f"row {index}: {message}")

    def add(self, row: object, index: int) -> None:
        try:
            self.data.examples.append(parse_row(row, self.data.name, index))
        except MalformedRow as e:
            self.skip(index, e.reason, str(e))


def _read_jsonl(path: Path, out: _Collector) -> None:
    with path.open("rb") as f:
        for index, raw in enumerate(f):
            if not raw.strip():
                continue  # blank lines (a trailing newline, a separator) are not rows
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                out.skip(index, "bad_utf8", "line is not valid UTF-8")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                out.skip(index, "not_json", f"line is not JSON ({e.msg})")
                continue
            out.add(row, index)


def _parquet_rows(files: list[Path]) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in files:
        try:
            parquet = pq.ParquetFile(file)
            for batch in parquet.iter_batches(batch_size=4096):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{file}: not a readable parquet file ({e})") from e


def _arrow_stream_rows(files: list[Path]) -> Iterator[dict]:
    import pyarrow as pa

    for file in files:
        try:
            with pa.memory_map(str(file)) as source:
                for batch in pa.ipc.open_stream(source):
                    yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{file}: not a readable Arrow stream file ({e})") from e


def _hf_arrow_files(directory: Path) -> list[Path]:
    """The arrow shards in the order `save_to_disk` recorded them in state.json (else sorted by name)."""
    state = directory / "state.json"
    if state.is_file():
        names = [entry["filename"] for entry in json.loads(state.read_text()).get("_data_files", [])]
        if names:
            return [directory / name for name in names]
    return sorted(directory.glob("*.arrow"))


_SPLITS = ("train", "test", "validation", "valid", "dev")


def _parquet_files(directory: Path) -> list[Path]:
    """All parquet files under `directory`, refusing a Hub-style layout that mixes splits
    (data/train-*.parquet next to data/test-*.parquet), which would silently train on test prompts."""
    files = sorted(directory.rglob("*.parquet"))
    splits = {f.name.split("-")[0] for f in files} & set(_SPLITS)
    if len(splits) > 1:
        raise ValueError(
            f"{directory} holds parquet files of several splits {sorted(splits)}; "
            f"give a glob for one, e.g. {directory}/**/train-*.parquet"
        )
    return files


def _detect(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = sorted(p.name for p in path.iterdir() if p.is_dir())
            raise ValueError(f"{path} is a DatasetDict with splits {splits}; point at one split's directory")
        if any(path.glob("*.arrow")) and (
            (path / "state.json").is_file() or (path / "dataset_info.json").is_file()
        ):
            return "hf"
        if any(path.rglob("*.parquet")):
            return "parquet"
        raise ValueError(f"{path}: directory holds neither a saved Hugging Face dataset nor parquet files")
    if path.suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if path.suffix == ".parquet":
        return "parquet"
    raise ValueError(
        f"{path}: cannot tell the format from the name (use .jsonl, .parquet or a dataset directory)"
    )


def _read_parquet_glob(pattern: str, format: str, name: str | None) -> SourceData:
    """A glob such as `data/train-*.parquet` (the Hub layout) names the shards of one split."""
    if format not in ("auto", "parquet", "or1"):
        raise ValueError(f"{pattern}: a glob pattern can only name parquet files, not format {format!r}")
    files = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    if not files or any(f.suffix != ".parquet" for f in files):
        raise ValueError(
            f"{pattern}: the pattern must match one or more .parquet files (matched {len(files)})"
        )
    out = _Collector(name or files[0].stem.split("-")[0])
    for index, row in enumerate(_parquet_rows(files)):
        out.add(row, index)
    return out.data


def read_source(path: str | Path, format: str = "auto", name: str | None = None) -> SourceData:
    """Read every row of `path` (a file, a dataset directory, or a glob of parquet shards).

    `name` (default: the file's stem or the directory's name) becomes the default `data_source` and seeds
    the uids of rows that carry no id.
    """
    if format not in FORMATS:
        raise ValueError(f"{path}: unknown format {format!r} (choose from {FORMATS})")
    if any(c in str(path) for c in "*?["):
        return _read_parquet_glob(str(path), format, name)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset source not found: {path}")
    kind = _detect(path) if format == "auto" else ("parquet" if format == "or1" else format)
    out = _Collector(name or (path.name if path.is_dir() else path.stem))
    if kind == "jsonl":
        _read_jsonl(path, out)
        return out.data
    if kind == "parquet":
        rows = _parquet_rows(_parquet_files(path) if path.is_dir() else [path])
    else:
        if not path.is_dir():
            raise ValueError(f"{path}: a Hugging Face dataset source must be a directory")
        rows = _arrow_stream_rows(_hf_arrow_files(path))
    for index, row in enumerate(rows):
        out.add(row, index)
    return out.data
