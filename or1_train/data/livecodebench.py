"""LiveCodeBench from a local copy, cut to the paper's date window (dossier §6.1: 2024-08-01 to 2025-02-01).

Two row layouts are read, told apart per row:

- LiveCodeBench's own (`livecodebench/code_generation_lite`): `question_content`, `starter_code`,
  `public_test_cases` / `private_test_cases` (JSON, or base64 of zlib of a pickled JSON string), `metadata`
  (JSON with `func_name` for call-style problems), `contest_date`.
- OR1's (`Skywork/LiveCodeBench`, `livecodebench_2408_2502`): `prompt` + `reward_model.ground_truth`, with
  `contest_date` at the top level or in `extra_info`.

Both become `Example`s whose ground truth is the code reward's `inputs`/`outputs`(/`fn_name`) JSON. The
window is [start, end): a problem dated exactly on the end date belongs to the next window. Private tests
are unpickled with an unpickler that refuses every global, so a crafted file cannot run code: LiveCodeBench
pickles a plain string, which needs none.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

from or1_train.data.schema import MalformedRow
from or1_train.data.sources import SourceData, _Collector, _parquet_rows
from or1_train.spec import LIVECODEBENCH_WINDOW

WINDOW = LIVECODEBENCH_WINDOW
INSTRUCTION = (
    "Solve the problem in Python. Give the complete program in one ```python block at the end of your answer."
)
STARTER = "Use this starter code and complete it:\n```python\n{code}\n```"


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ARG002 - refusing is the point
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def decode_tests(value) -> list[dict]:
    """A test-case field: a list, its JSON, or LiveCodeBench's compressed form of that JSON."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        raw = zlib.decompress(base64.b64decode(value))
        return json.loads(_NoGlobals(io.BytesIO(raw)).load())
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError, TypeError) as e:
        raise MalformedRow("bad_tests", f"test cases are neither JSON nor compressed JSON ({e})") from None


def contest_day(value) -> date | None:
    """`contest_date` as a date: ISO text ("2024-08-03T00:00:00"), a datetime or date, or epoch ms/s."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC).date()
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


def _native_row(row: dict) -> dict:
    """A LiveCodeBench row in OR1's layout (prompt messages, ground truth JSON for the code reward)."""
    tests = decode_tests(row.get("public_test_cases")) + decode_tests(row.get("private_test_cases"))
    if not tests or not all(isinstance(t, dict) and "input" in t and "output" in t for t in tests):
        raise MalformedRow("bad_tests", "no test cases with input and output")
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata or "{}")
    truth = {"inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests]}
    if tests[0].get("testtype") == "functional" and metadata.get("func_name"):
        truth["fn_name"] = metadata["func_name"]
    text = str(row.get("question_content") or "")
    if row.get("starter_code"):
        text += "\n\n" + STARTER.format(code=row["starter_code"])
    return {
        "id": row.get("question_id"),
        "prompt": [{"role": "user", "content": f"{text}\n\n{INSTRUCTION}"}],
        "ground_truth": json.dumps(truth),
        "ability": "code",
        "data_source": "livecodebench",
        "extra_info": {
            "contest_date": str(row.get("contest_date")),
            "platform": row.get("platform"),
            "difficulty": row.get("difficulty"),
        },
    }


def _raw_rows(path: Path, out: _Collector):
    if path.suffix == ".parquet" or path.is_dir():
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        yield from enumerate(_parquet_rows(files))
        return
    with path.open("rb") as f:
        for index, line in enumerate(f):
            if not line.strip():
                continue
            try:
                yield index, json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                out.skip(index, "not_json", f"line is not JSON ({e})")


def read_livecodebench(
    path: str | Path, *, start: date = WINDOW[0], end: date = WINDOW[1], name: str = "livecodebench"
) -> tuple[SourceData, Counter]:
    """Problems of a local LiveCodeBench copy (JSONL, parquet file or directory) dated in [start, end).

    Returns the data and the counts of problems left out ("before_window", "after_window", "no_date").
    Malformed rows are skipped and counted in `SourceData.skipped`, as `read_source` does.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LiveCodeBench copy not found: {path}")
    out, outside = _Collector(name), Counter()
    for index, row in _raw_rows(path, out):
        if not isinstance(row, dict):
            out.skip(index, "bad_type", "row must be an object")
            continue
        extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        day = contest_day(row.get("contest_date", extra.get("contest_date")))
        if day is None:
            outside["no_date"] += 1
            continue
        if not start <= day < end:
            outside["before_window" if day < start else "after_window"] += 1
            continue
        try:
            parsed = row if "prompt" in row else _native_row(row)
        except (MalformedRow, json.JSONDecodeError, AttributeError) as e:
            reason = e.reason if isinstance(e, MalformedRow) else "bad_metadata"
            out.skip(index, reason, str(e))
            continue
        out.add(parsed, index)
    return out.data, outside
