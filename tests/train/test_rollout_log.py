"""The rollout log the platform's rollout browser reads: one file per step, a seeded sample of groups, the
trainer's own advantages, filter reasons, clipped long texts, atomic writes. The platform's reader of these files
is tested in tests/platform/test_dashboard_views.py."""

from __future__ import annotations

import json

import pytest
import torch

from or1_train.algo.advantages import group_advantages
from or1_train.data.schema import Example
from or1_train.rollout.base import Sample
from or1_train.rollout_log import ROLLOUTS_DIR, clip, prompt_text, record_groups, step_file
from or1_train.trainer import Group


def group(uid: str, rewards: list[float], *, lengths: list[int] | None = None, cut: set[int] = frozenset()) -> Group:
    lengths = lengths or [5 + i for i in range(len(rewards))]
    samples = [
        Sample(list(range(n)), [-0.1] * n, "length" if i in cut else "stop", f"answer {i} of {uid}")
        for i, n in enumerate(lengths)
    ]
    example = Example(uid, [{"role": "user", "content": f"What is {uid}?"}], "42", data_source="arith-easy")
    return Group(example, [1, 2, 3], samples, rewards)


def test_one_file_per_step_with_every_response_of_the_sampled_groups(tmp_path):
    informative = group("p0", [1.0, 0.0, 0.0, 1.0], cut={1})
    solved = group("p1", [1.0, 1.0, 1.0, 1.0])
    hopeless = group("p2", [0.0, 0.0, 0.0, 0.0])
    path = record_groups(tmp_path, 7, [informative, solved, hopeless], kept=[informative], max_groups=8, seed=3)
    assert path == tmp_path / ROLLOUTS_DIR / "step-000007.jsonl" == step_file(tmp_path, 7)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    first = rows[0]
    assert first["kept"] and first["filter_reason"] is None
    assert first["prompt"] == "What is p0?" and first["ground_truth"] == "42" and first["data_source"] == "arith-easy"
    assert [r["truncated"] for r in first["responses"]] == [False, True, False, False]
    assert [r["length"] for r in first["responses"]] == [5, 6, 7, 8]
    want = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.zeros(4, dtype=torch.long))
    assert [r["advantage"] for r in first["responses"]] == pytest.approx(want.tolist())
    assert first["reward_mean"] == 0.5 and first["reward_std"] == pytest.approx(0.57735, rel=1e-4)
    assert [(r["kept"], r["filter_reason"]) for r in rows[1:]] == [(False, "solve_all"), (False, "solve_none")]
    assert all(resp["advantage"] == 0.0 for r in rows[1:] for resp in r["responses"])
    assert not list((tmp_path / ROLLOUTS_DIR).glob(".*"))  # the temporary file was renamed away


def test_the_sample_is_seeded_by_run_seed_and_step(tmp_path):
    groups = [group(f"p{i}", [float(i % 2), 1.0 - i % 2]) for i in range(16)]

    def indices(step: int, seed: int) -> list[int]:
        path = record_groups(tmp_path, step, groups, kept=groups, max_groups=4, seed=seed)
        return [json.loads(line)["index"] for line in path.read_text().splitlines()]

    assert indices(5, 0) == indices(5, 0)  # a resumed run rewrites the same groups
    assert len(indices(5, 0)) == 4 and indices(5, 0) == sorted(indices(5, 0))
    assert {tuple(indices(s, 0)) for s in range(5, 12)} != {tuple(indices(5, 0))}
    assert record_groups(tmp_path, 9, groups, kept=groups, max_groups=0, seed=0) is None


def test_refilled_groups_and_a_full_batch(tmp_path):
    first_round = [group("a", [1.0, 0.0]), group("b", [0.0, 1.0])]
    refill = group("c", [1.0, 0.0])
    path = record_groups(tmp_path, 1, first_round, kept=[first_round[0], refill], max_groups=10, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["uid"], r["kept"], r["filter_reason"]) for r in rows] == [
        ("a", True, None),
        ("b", False, "batch_full"),
        ("c", True, None),
    ]


def test_long_texts_keep_their_beginning_and_end():
    text = "A" * 1000 + "B" * 1000 + "\\boxed{42}"
    clipped, full = clip(text, 500)
    assert full == len(text) and len(clipped) < 600
    assert clipped.startswith("A" * 200) and clipped.endswith("\\boxed{42}") and "characters not recorded" in clipped
    assert clip("short", 500) == ("short", None)
    assert prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}]) == (
        "[system]\nBe brief.\n\n[user]\n1+1?"
    )
