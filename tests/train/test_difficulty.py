"""Offline difficulty estimation: pass counts recorded per model, and the 1..N-1 filter."""

from __future__ import annotations

import json

from or1_train.cli import main
from or1_train.data.or1 import read_data_source
from or1_train.data.schema import Example
from or1_train.data.sources import read_source
from or1_train.data.synthetic import write_dataset
from or1_train.difficulty import annotate
from or1_train.spec import DataSource, DifficultyFilter


def test_annotate_keeps_other_models_and_feeds_the_released_filter(tmp_path):
    base = Example(uid="a", prompt=[{"role": "user", "content": "1+1?"}], ground_truth="2",
                   extra={"model_difficulty": {"R1-7B": 16}})
    solved_some = annotate(base, "tiny", 1, 2)
    assert solved_some.extra["model_difficulty"] == {"R1-7B": 16, "tiny": 1}
    assert solved_some.extra["pass_count"] == {"tiny": 1} and solved_some.extra["pass_samples"] == {"tiny": 2}
    from or1_train.data.or1 import write_jsonl

    rows = [annotate(base, "tiny", c, 2) for c in (0, 1, 2)]
    path = write_jsonl(tmp_path / "a.jsonl", [Example(**{**vars(r), "uid": str(i)}) for i, r in enumerate(rows)])
    kept, dropped = read_data_source(DataSource(path=str(path), difficulty=DifficultyFilter(model="tiny", max=1)))
    assert [e.uid for e in kept.examples] == ["1"] and dropped == {"below_min": 1, "above_max": 1}


def test_cli_estimates_n2_on_four_problems_with_vllm(tiny_model_dir, tmp_path, capsys):
    data = write_dataset(tmp_path / "problems.jsonl", 4, (1, 2), 3)
    out = tmp_path / "estimated.jsonl"
    code = main(["estimate-difficulty", str(tiny_model_dir), "--data", str(data), "--n", "2", "--out", str(out),
                 "--dtype", "float32", "--max-tokens", "16", "--model-name", "tiny"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = read_source(out).examples
    counts = [r.extra["pass_count"]["tiny"] for r in rows]
    assert len(rows) == 4 and all(0 <= c <= 2 for c in counts)
    assert all(r.extra["pass_samples"]["tiny"] == 2 and r.extra["model_difficulty"]["tiny"] == c
               for r, c in zip(rows, counts, strict=True))
    assert report["n"] == 2 and report["num_problems"] == 4
    assert report["histogram"] == {str(c): counts.count(c) for c in range(3)}
    kept = read_source(report["filtered"]).examples
    assert [e.uid for e in kept] == [r.uid for r, c in zip(rows, counts, strict=True) if c == 1]
    assert report["kept"] == len(kept)
