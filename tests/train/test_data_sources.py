"""Row schema and source readers: every malformed kind is counted, every format round-trips."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from or1_train.data.schema import MalformedRow, parse_row
from or1_train.data.sources import read_source

GOOD = {"prompt": "What is 2 + 2?", "ground_truth": "4"}
OR1_ROW = {
    "data_source": "deepscaler",
    "prompt": [{"role": "user", "content": "Find x."}],
    "ability": "math",
    "reward_model": {"style": "rule", "ground_truth": '["3", "3.0"]'},
    "extra_info": {"model_difficulty": {"DeepSeek-R1-Distill-Qwen-7B": 4}},
}


def test_parse_row_accepts_string_prompt_and_defaults():
    example = parse_row(GOOD, "mine", 0)
    assert example.prompt == [{"role": "user", "content": "What is 2 + 2?"}]
    assert example.ground_truth == "4"
    assert example.ability == "math"
    assert example.data_source == "mine"
    assert example.uid == parse_row(dict(GOOD), "mine", 0).uid
    assert example.uid != parse_row(GOOD, "mine", 1).uid
    assert example.uid != parse_row(GOOD, "other", 0).uid


def test_parse_row_reads_or1_schema_and_keeps_json_ground_truth_as_given():
    example = parse_row({**OR1_ROW, "solution": "worked"}, "or1", 7)
    assert example.ground_truth == '["3", "3.0"]'
    assert example.data_source == "deepscaler"
    assert example.extra == {"model_difficulty": {"DeepSeek-R1-Distill-Qwen-7B": 4}, "solution": "worked"}


def test_parse_row_ids():
    assert parse_row({**GOOD, "uid": "abc"}, "src", 0).uid == "abc"
    assert parse_row({**GOOD, "id": 12}, "src", 0).uid == "src/12"
    code = parse_row({**GOOD, "ability": "code", "ground_truth": [{"input": "1", "output": "2"}]}, "s", 0)
    assert json.loads(code.ground_truth) == [{"input": "1", "output": "2"}]
    assert parse_row({**GOOD, "ground_truth": 12}, "s", 0).ground_truth == "12"


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"ground_truth": "4"}, "missing_prompt"),
        ({"prompt": "   ", "ground_truth": "4"}, "empty_prompt"),
        ({"prompt": [], "ground_truth": "4"}, "empty_prompt"),
        ({"prompt": "hi"}, "missing_answer"),
        ({"prompt": "hi", "ground_truth": ""}, "missing_answer"),
        ({"prompt": "hi", "reward_model": {"style": "rule"}}, "missing_answer"),
        ({"prompt": 42, "ground_truth": "4"}, "bad_type"),
        ({"prompt": [{"role": "user"}], "ground_truth": "4"}, "bad_type"),
        ({"prompt": [{"role": "user", "content": 3}], "ground_truth": "4"}, "bad_type"),
        ({"prompt": "hi", "ground_truth": 1.5}, "bad_type"),
        ({"prompt": "hi", "ground_truth": True}, "bad_type"),
        ({"prompt": "hi", "ground_truth": "4", "extra_info": "x"}, "bad_type"),
        ({"prompt": b"\xff\xfe", "ground_truth": "4"}, "bad_text"),
        ({"prompt": "bad \ud800 surrogate", "ground_truth": "4"}, "bad_text"),
        ({"prompt": "hi", "ground_truth": "4", "ability": "poetry"}, "bad_ability"),
        (["not", "a", "dict"], "bad_type"),
    ],
)
def test_parse_row_refuses_with_a_reason(row, reason):
    with pytest.raises(MalformedRow) as err:
        parse_row(row, "src", 0)
    assert err.value.reason == reason


def test_jsonl_counts_each_malformed_kind_and_never_crashes(tmp_path):
    lines = [
        json.dumps(GOOD).encode(),
        json.dumps({"prompt": "no answer"}).encode(),
        json.dumps({"prompt": "", "ground_truth": "1"}).encode(),
        b'{"prompt": "caf\xe9", "ground_truth": "1"}',  # latin-1 byte: not UTF-8
        b"{this is not json",
        json.dumps({"prompt": ["x"], "ground_truth": "1"}).encode(),
        b"",  # blank line: not a row at all
        json.dumps(
            {"prompt": "bad \ud800", "ground_truth": "1"}
        ).encode(),  # \ud800 escape decodes to a surrogate
        json.dumps(OR1_ROW).encode(),
        b"[1, 2]",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    data = read_source(path)
    assert data.name == "mixed"
    assert len(data.examples) == 2
    assert data.skipped == {
        "missing_answer": 1,
        "empty_prompt": 1,
        "bad_utf8": 1,
        "not_json": 1,
        "bad_type": 2,
        "bad_text": 1,
    }
    assert data.error_samples[0].startswith("row 1: missing_answer")


def _rows(n):
    return [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "reward_model": {"style": "rule", "ground_truth": str(i)},
            "data_source": "t",
            "extra_info": {"i": i},
        }
        for i in range(n)
    ]


def test_parquet_file_round_trip_and_bad_rows(tmp_path):
    rows = _rows(5) + [
        {
            "prompt": None,
            "reward_model": {"style": "rule", "ground_truth": "1"},
            "data_source": "t",
            "extra_info": {"i": 99},
        }
    ]
    path = tmp_path / "or1.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    data = read_source(path, name="or1")
    assert [e.ground_truth for e in data.examples] == ["0", "1", "2", "3", "4"]
    assert data.examples[3].prompt == [{"role": "user", "content": "q3"}]
    assert data.examples[3].extra == {"i": 3}
    assert data.skipped == {"missing_prompt": 1}


def test_parquet_directory_and_glob(tmp_path):
    (tmp_path / "data").mkdir()
    table = pa.Table.from_pylist(_rows(6))
    pq.write_table(table.slice(0, 4), tmp_path / "data" / "train-00000-of-00002.parquet")
    pq.write_table(table.slice(4), tmp_path / "data" / "train-00001-of-00002.parquet")
    data = read_source(tmp_path)
    assert [e.ground_truth for e in data.examples] == [str(i) for i in range(6)]
    pq.write_table(table.slice(0, 1), tmp_path / "data" / "test-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="several splits"):
        read_source(tmp_path)
    train = read_source(str(tmp_path / "data" / "train-*.parquet"))
    assert train.name == "train" and len(train.examples) == 6


def _save_to_disk_layout(directory, table, shards):
    """What `datasets.Dataset.save_to_disk` writes: Arrow *stream* shards, state.json, dataset_info.json."""
    directory.mkdir()
    names = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for name, (start, length) in zip(names, shards):
        with pa.OSFile(str(directory / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(start, length), max_chunksize=2)
    state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": "x", "_split": "train"}
    (directory / "state.json").write_text(json.dumps(state))
    (directory / "dataset_info.json").write_text(json.dumps({"features": {}}))


def test_hf_dataset_directory_round_trip(tmp_path):
    table = pa.Table.from_pylist(_rows(7))
    _save_to_disk_layout(tmp_path / "hfdata", table, [(0, 3), (3, 4)])
    data = read_source(tmp_path / "hfdata")
    assert data.name == "hfdata"
    assert [e.ground_truth for e in data.examples] == [str(i) for i in range(7)]
    assert data.examples[6].extra == {"i": 6}
    assert [e.uid for e in data.examples] == [
        e.uid for e in read_source(tmp_path / "hfdata", format="hf").examples
    ]


def test_unknown_formats_are_clear_errors_naming_the_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        read_source(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        read_source(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_source(tmp_path / "missing.jsonl")
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    (tmp_path / "dd" / "train").mkdir()
    with pytest.raises(ValueError, match="DatasetDict"):
        read_source(tmp_path / "dd")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="broken.parquet"):
        read_source(tmp_path / "broken.parquet")
