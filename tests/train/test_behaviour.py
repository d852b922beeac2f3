"""Self-reflection and new-thought counts and per-source lengths (issue 9, behaviour metrics)."""

from __future__ import annotations

import pytest

from or1_train.behaviour import behaviour_metrics, count_phrases


def test_phrases_are_whole_words_and_case_insensitive():
    text = "Wait, let me recheck. Alternatively we could Double check... awaited rechecking"
    assert count_phrases(text) == {"self-reflection": 2, "new-thoughts": 2}


def test_metrics_per_source_with_density_per_thousand_tokens():
    m = behaviour_metrics(
        ["wait wait", "ok", "recheck this"],
        [10, 30, 20],
        [False, True, False],
        ["math/a", "math/a", "code/b"],
        [1.0, 0.0, 1.0],
    )
    assert m["exploration/scores/math/a/mean"] == 0.5 and m["exploration/scores/code/b/mean"] == 1.0
    assert m["response_length/math/a/mean"] == 20
    assert m["response_length/math/a_untruncated/mean"] == 10
    assert m["new-thoughts/math/a/count"] == 1.0  # 2 matches over 2 samples
    assert m["new-thoughts/math/a/density"] == pytest.approx(1000 * 2 / 40)
    assert m["self-reflection/code/b/count"] == 1.0 and m["self-reflection/math/a/count"] == 0.0
