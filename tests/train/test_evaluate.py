"""avg@k and the unbiased pass@k estimator, checked against brute-force enumeration."""

from __future__ import annotations

import itertools

import pytest

from or1_train.evaluate import pass_at_k, score_correct_counts


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_pass_at_k_equals_brute_force_over_all_k_subsets(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_1_is_the_share_correct_and_pass_at_n_is_any_correct():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    assert pass_at_k(8, 1, 8) == 1.0 and pass_at_k(8, 0, 8) == 0.0


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_avg_and_pass_at_k_over_problems():
    correct = [[True, False, False, False], [False, False, False, False], [True, True, True, True]]
    avg, pk = score_correct_counts(correct, 4)
    assert avg == pytest.approx((0.25 + 0 + 1) / 3)
    assert pk == pytest.approx((1 + 0 + 1) / 3)
    avg2, pk2 = score_correct_counts(correct, 2)
    assert avg2 == avg and pk2 == pytest.approx((0.5 + 0 + 1) / 3)
