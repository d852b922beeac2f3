"""Group advantages, group statistics and the informative-group mask, against hand-computed numbers."""

import pytest
import torch

from or1_train.algo.advantages import group_advantages, group_stats, informative_group_mask

# Four groups, interleaved, with ids that are neither dense nor positive:
#   7: [1, 0, 1, 1]   ties; mean 0.75, squared deviations sum 0.75 -> unbiased std 0.5,
#                     population std sqrt(0.75 / 4) = 0.4330127018922193
#   3: [1, 1, 1]      all equal -> advantage 0 in every mode
#  -1: [0, 0, 1]      mean 1/3, squared deviations sum 2/3 -> unbiased std sqrt(1/3) = 0.5773502691896257,
#                     population std sqrt(2/9) = 0.4714045207910317
#  42: [0.5]          singleton -> mean 0, std 1
IDS = torch.tensor([7, 3, -1, 7, 42, 3, 7, -1, 3, 7, -1])
REWARDS = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.5, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
EPS = 1e-6


def _close(actual, expected, tol=1e-6):
    assert actual.shape == (len(expected),)
    assert torch.allclose(actual.double(), torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


def test_unbiased_std_matches_hand_values():
    a, d = 0.5 + EPS, 0.5773502691896257 + EPS
    expected = [0.25 / a, 0.0, (-1 / 3) / d, -0.75 / a, 0.5 / (1 + EPS), 0.0, 0.25 / a, (-1 / 3) / d, 0.0,
                0.25 / a, (2 / 3) / d]
    adv = group_advantages(REWARDS, IDS)
    assert adv.dtype == torch.float32
    _close(adv, expected)


def test_unbiased_std_without_eps_gives_round_numbers():
    adv = group_advantages(REWARDS, IDS, eps=0.0)
    _close(adv, [0.5, 0.0, -0.5773502691896257, -1.5, 0.5, 0.0, 0.5, -0.5773502691896257, 0.0, 0.5,
                 1.1547005383792515])


def test_population_std_matches_hand_values():
    a, d = 0.4330127018922193 + EPS, 0.4714045207910317 + EPS
    expected = [0.25 / a, 0.0, (-1 / 3) / d, -0.75 / a, 0.5 / (1 + EPS), 0.0, 0.25 / a, (-1 / 3) / d, 0.0,
                0.25 / a, (2 / 3) / d]
    _close(group_advantages(REWARDS, IDS, std_mode="population"), expected)


def test_no_std_is_dr_grpo_centering_only():
    expected = [0.25, 0.0, -1 / 3, -0.75, 0.5, 0.0, 0.25, -1 / 3, 0.0, 0.25, 2 / 3]
    _close(group_advantages(REWARDS, IDS, std_mode="none"), expected)


@pytest.mark.parametrize("eps", [1e-6, 0.0])
@pytest.mark.parametrize("mode", ["unbiased", "population", "none"])
def test_all_equal_group_gets_exact_zeros(mode, eps):
    # 0.1 * 3 / 3 is not 0.1 in floating point: the zeros must not depend on the mean being exact.
    adv = group_advantages(torch.tensor([0.1, 0.1, 0.1, 1.0, 0.0], dtype=torch.float64),
                           torch.tensor([0, 0, 0, 1, 1]), std_mode=mode, eps=eps)
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert adv[3] > 0 > adv[4]


def test_matches_a_per_group_loop_on_random_data():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 9, (200,), generator=gen)
    rewards = torch.randint(0, 2, (200,), generator=gen).double()
    adv = group_advantages(rewards, ids)
    for g in ids.unique():
        members = ids == g
        r = rewards[members]
        if r.numel() == 1:
            want = r / (1 + EPS)
        else:
            want = (r - r.mean()) / (r.std() + EPS)
        assert torch.allclose(adv[members], want, atol=1e-12)


def test_integer_rewards_and_empty_batch():
    adv = group_advantages(torch.tensor([1, 0]), torch.tensor([5, 5]), eps=0.0)
    assert adv.dtype == torch.get_default_dtype()
    # mean 0.5, unbiased std sqrt(0.5) = 0.7071067811865476
    _close(adv, [0.7071067811865476, -0.7071067811865476])
    assert group_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long)).shape == (0,)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="std_mode"):
        group_advantages(REWARDS, IDS, std_mode="sample")
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(REWARDS, IDS[:-1])
    with pytest.raises(TypeError, match="integer"):
        group_advantages(REWARDS, IDS.float())


def test_group_stats_counts_and_ratios():
    ids = torch.cat([IDS, torch.tensor([5, 5])])
    rewards = torch.cat([REWARDS, torch.tensor([0.0, 0.0])])
    # groups: 7 mixed, 3 all ones, -1 mixed, 42 single 0.5 (no advantage, neither 0 nor 1), 5 all zeros
    assert group_stats(rewards, ids) == {
        "num_groups": 5,
        "solve_none": 1,
        "solve_all": 1,
        "without_adv": 3,
        "solve_none_ratio": 0.2,
        "solve_all_ratio": 0.2,
        "without_adv_ratio": 0.6,
    }


def test_group_stats_of_an_empty_batch():
    stats = group_stats(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert stats["num_groups"] == 0 and stats["without_adv"] == 0 and stats["without_adv_ratio"] == 0.0


def test_informative_mask_keeps_only_mixed_groups():
    ids = torch.cat([IDS, torch.tensor([5, 5])])
    rewards = torch.cat([REWARDS, torch.tensor([0.0, 0.0])])
    mask = informative_group_mask(rewards, ids)
    assert mask.dtype == torch.bool
    # True exactly for groups 7 (positions 0, 3, 6, 9) and -1 (positions 2, 7, 10)
    keep = {0, 2, 3, 6, 7, 9, 10}
    assert mask.tolist() == [i in keep for i in range(13)]
