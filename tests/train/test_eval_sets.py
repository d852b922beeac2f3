"""Eval sets in the run spec: `format: livecodebench` with the paper's date window, and `evaluation.samples`."""

from __future__ import annotations

import copy
import json
from datetime import date

from or1_train.data.or1 import read_eval_set
from or1_train.spec import LIVECODEBENCH_WINDOW, parse_spec, validate_spec
from tests.conftest import TINY_SPEC
from tests.train.test_or1_data import lcb_row


def spec_with(evaluation: dict) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    spec["evaluation"] = evaluation
    return spec


def test_a_livecodebench_set_reads_the_papers_window_unless_the_spec_names_another(tmp_path):
    path = tmp_path / "lcb.jsonl"
    days = {"july": "2024-07-31", "august": "2024-08-01", "january": "2025-01-31", "february": "2025-02-01"}
    path.write_text("".join(json.dumps(lcb_row(name, day)) + "\n" for name, day in days.items()))
    spec = parse_spec(spec_with({"sets": [
        {"name": "lcb", "path": str(path), "format": "livecodebench"},
        {"name": "lcb-2025", "path": str(path), "format": "livecodebench", "window": ["2025-01-01", "2025-03-01"]},
    ]}))
    paper, late = spec.evaluation.sets
    assert paper.window == LIVECODEBENCH_WINDOW == (date(2024, 8, 1), date(2025, 2, 1))
    # the frozen spec says which window a result is on
    assert spec.model_dump(mode="json")["evaluation"]["sets"][0]["window"] == ["2024-08-01", "2025-02-01"]
    assert [e.uid for e in read_eval_set(paper)] == ["lcb/august", "lcb/january"]
    assert [e.uid for e in read_eval_set(late)] == ["lcb-2025/january", "lcb-2025/february"]
    assert [e.uid for e in read_eval_set(paper.model_copy(update={"limit": 1}))] == ["lcb/august"]


def test_windows_and_sample_counts_are_checked_with_the_field_path():
    sets = [
        {"name": "aime", "path": "a.jsonl", "window": ["2024-01-01", "2024-02-01"]},
        {"name": "lcb", "path": "b.jsonl", "format": "livecodebench", "window": ["2025-02-01", "2024-08-01"]},
    ]
    assert [str(e) for e in validate_spec(spec_with({"sets": sets, "k": 4, "samples": 2}))] == [
        "evaluation.sets[0].window: only a set of format 'livecodebench' has a date window",
        "evaluation.sets[1].window: the start (2025-02-01) must be before the end (2024-08-01)",
        "evaluation.samples: must be >= evaluation.k (4): pass@k needs at least k answers",
    ]
    bad_date = [{"name": "lcb", "path": "b", "format": "livecodebench", "window": ["soon", "2025-01-01"]}]
    assert [str(e) for e in validate_spec(spec_with({"sets": bad_date}))] == [
        "evaluation.sets[0].window[0]: must be a date (YYYY-MM-DD)"
    ]
    assert validate_spec(spec_with({"sets": [], "k": 4, "samples": 16})) == []
