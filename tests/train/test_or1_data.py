"""OR1 data layouts: the RL data with per-model difficulty, the AIME eval parquet, a LiveCodeBench copy."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from or1_train.data.livecodebench import read_livecodebench
from or1_train.data.or1 import (
    filter_by_difficulty,
    read_data_source,
    resolve_dataset,
    write_jsonl,
)
from or1_train.data.sources import read_source
from or1_train.spec import DataSource, DifficultyFilter

MODELS = ("DeepSeek-R1-Distill-Qwen-1.5B", "DeepSeek-R1-Distill-Qwen-7B", "DeepSeek-R1-Distill-Qwen-32B")


def or1_row(i: int, difficulty: dict, ability: str = "math") -> dict:
    """One row as Skywork-OR1-RL-Data stores it: chat prompt, JSON-list ground truth, model_difficulty."""
    truth = json.dumps([str(i)]) if ability == "math" else json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})
    return {
        "data_source": "train-math-numinamath1.5_olympiads" if ability == "math" else "train-code-taco",
        "prompt": [{"content": f"Problem {i}: what is {i}?", "role": "user"}],
        "ability": ability,
        "reward_model": {"ground_truth": truth, "style": "rule"},
        "extra_info": {"index": i, "model_difficulty": {m: difficulty.get(m, 0) for m in MODELS}},
    }


@pytest.fixture
def or1_parquet(tmp_path):
    """Six math rows whose 7B difficulties are 0, 1, 8, 15, 16, 3 (the file keeps the struct layout)."""
    rows = [or1_row(i, {MODELS[1]: d, MODELS[2]: 16 - d}) for i, d in enumerate([0, 1, 8, 15, 16, 3])]
    path = tmp_path / "data" / "math-00000-of-00001.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_released_filter_keeps_1_to_15_for_the_named_model(or1_parquet):
    data, dropped = read_data_source(
        DataSource(path=str(or1_parquet), format="or1", difficulty=DifficultyFilter(model=MODELS[1]))
    )
    assert [e.ground_truth for e in data.examples] == ['["1"]', '["2"]', '["3"]', '["5"]']
    assert dropped == {"below_min": 1, "above_max": 1}
    data32, _ = read_data_source(
        DataSource(path=str(or1_parquet), difficulty=DifficultyFilter(model=MODELS[2], min=2, max=16))
    )
    assert [e.ground_truth for e in data32.examples] == ['["0"]', '["1"]', '["2"]', '["5"]']  # 16, 15, 8, 13


def test_no_filter_reads_every_row_and_keeps_the_difficulty_table(or1_parquet):
    data, dropped = read_data_source(DataSource(path=str(or1_parquet)))
    assert len(data.examples) == 6 and not dropped
    assert data.examples[2].extra["model_difficulty"][MODELS[1]] == 8


def test_unknown_model_is_an_error_naming_the_known_ones(or1_parquet):
    data = read_source(or1_parquet)
    with pytest.raises(ValueError, match=r"no row has model_difficulty\['Qwen-7B'\].*R1-Distill-Qwen-7B"):
        filter_by_difficulty(data, DifficultyFilter(model="Qwen-7B"))


def test_difficulty_as_json_string_and_missing_rows_in_jsonl(tmp_path):
    rows = [or1_row(0, {MODELS[1]: 4}), or1_row(1, {MODELS[1]: 0}), or1_row(2, {}, ability="code")]
    rows[0]["extra_info"]["model_difficulty"] = json.dumps(rows[0]["extra_info"]["model_difficulty"])
    del rows[2]["extra_info"]["model_difficulty"]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data, dropped = filter_by_difficulty(read_source(path), DifficultyFilter(model=MODELS[1]))
    assert [e.ground_truth for e in data.examples] == ['["0"]']
    assert dropped == {"below_min": 1, "no_difficulty": 1}


def test_written_dataset_reads_back_identically(or1_parquet, tmp_path):
    data = read_source(or1_parquet)
    back = read_source(write_jsonl(tmp_path / "out.jsonl", data.examples))
    assert back.examples == data.examples


def test_hub_id_resolves_from_the_local_cache_or_names_itself(tmp_path, monkeypatch, or1_parquet):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="'Skywork/Skywork-OR1-RL-Data' is neither a local path"):
        resolve_dataset("Skywork/Skywork-OR1-RL-Data")
    snapshot = tmp_path / "hub" / "datasets--Skywork--Skywork-OR1-RL-Data" / "snapshots" / "abc123" / "data"
    snapshot.mkdir(parents=True)
    (snapshot / "math-00000-of-00001.parquet").write_bytes(or1_parquet.read_bytes())
    code = [or1_row(9, {MODELS[1]: 3}, ability="code")]
    pq.write_table(pa.Table.from_pylist(code), snapshot / "code-00000-of-00001.parquet")
    math_only, _ = read_data_source(DataSource(path="Skywork/Skywork-OR1-RL-Data:math"))
    assert len(math_only.examples) == 6 and {e.ability for e in math_only.examples} == {"math"}
    both, _ = read_data_source(DataSource(path="Skywork/Skywork-OR1-RL-Data"))
    assert len(both.examples) == 7
    with pytest.raises(FileNotFoundError, match="no test-"):
        resolve_dataset("Skywork/Skywork-OR1-RL-Data:test")


def test_aime_eval_layout_parses_with_answer_and_prompt(tmp_path):
    """The exact schema of OR1's aime24.parquet (checked against the released file by hand)."""
    row = {
        "data_source": "test-math-aime24",
        "prompt": [{"content": "Find x. Let's think step by step and output the final answer within \\boxed{}.",
                    "role": "user"}],
        "ability": "math",
        "reward_model": {"ground_truth": "204", "style": "rule"},
        "extra_info": {"index": 0, "split": "test"},
    }
    path = tmp_path / "aime24.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    data = read_source(path)
    (example,) = data.examples
    assert (example.ground_truth, example.ability, example.data_source) == ("204", "math", "test-math-aime24")
    assert example.prompt[0]["content"].startswith("Find x.") and example.extra["split"] == "test"


def _compressed(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def lcb_row(qid: str, day: str, functional: bool = False) -> dict:
    """A row of livecodebench/code_generation_lite (private tests compressed as the release does)."""
    kind = "functional" if functional else "stdin"
    return {
        "question_title": qid,
        "question_content": f"Problem {qid}",
        "platform": "leetcode" if functional else "atcoder",
        "question_id": qid,
        "contest_id": "c1",
        "contest_date": day,
        "starter_code": "class Solution:\n    def f(self, x: int) -> int:" if functional else "",
        "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "1" if functional else "1\n", "output": "2", "testtype": kind}]),
        "private_test_cases": _compressed([{"input": "5" if functional else "5\n", "output": "6", "testtype": kind}]),
        "metadata": json.dumps({"func_name": "f"} if functional else {}),
    }


def test_livecodebench_window_and_native_layout(tmp_path):
    rows = [
        lcb_row("early", "2024-07-31T00:00:00"),
        lcb_row("first", "2024-08-01T00:00:00"),
        lcb_row("call", "2024-12-15T00:00:00", functional=True),
        lcb_row("last", "2025-01-31T23:00:00"),
        lcb_row("late", "2025-02-01T00:00:00"),
        {**lcb_row("undated", ""), "contest_date": None},
    ]
    path = tmp_path / "lcb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data, outside = read_livecodebench(path)
    assert [e.uid for e in data.examples] == ["livecodebench/first", "livecodebench/call", "livecodebench/last"]
    assert outside == {"before_window": 1, "after_window": 1, "no_date": 1}
    stdin, call = json.loads(data.examples[0].ground_truth), json.loads(data.examples[1].ground_truth)
    assert stdin == {"inputs": ["1\n", "5\n"], "outputs": ["2", "6"]}
    assert call == {"inputs": ["1", "5"], "outputs": ["2", "6"], "fn_name": "f"}
    assert "class Solution" in data.examples[1].prompt[0]["content"] and data.examples[1].ability == "code"
    wide, _ = read_livecodebench(path, start=date(2024, 1, 1), end=date(2026, 1, 1))
    assert len(wide.examples) == 5


def test_livecodebench_or1_layout_parquet_and_refused_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    rows = [
        {**or1_row(0, {}, ability="code"), "contest_date": "2024-09-01"},
        {**or1_row(1, {}, ability="code"), "contest_date": "2023-09-01"},
    ]
    path = tmp_path / "lcb.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    data, outside = read_livecodebench(path)
    assert len(data.examples) == 1 and outside == {"before_window": 1}
    evil = {**lcb_row("x", "2024-09-01"), "private_test_cases": base64.b64encode(zlib.compress(
        pickle.dumps(Evil()))).decode()}
    bad = tmp_path / "evil.jsonl"
    bad.write_text(json.dumps(evil) + "\n")
    data, _ = read_livecodebench(bad)
    assert not data.examples and data.skipped == {"bad_tests": 1}
