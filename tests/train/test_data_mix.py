"""The mix sampler: weights, epochs, filters, exclusions, and resuming from a cursor."""

import json
from collections import Counter

import pytest

from or1_train.data.mix import MixSampler
from or1_train.data.schema import Example
from or1_train.data.sources import SourceData


def _source(name, n, prompt_len=None):
    examples = [
        Example(
            uid=f"{name}-{i}",
            prompt=[{"role": "user", "content": "x" * (prompt_len(i) if prompt_len else 5)}],
            ground_truth=str(i),
            data_source=name,
        )
        for i in range(n)
    ]
    return SourceData(name=name, examples=examples)


def test_weights_are_respected_over_many_draws():
    sampler = MixSampler([(_source("a", 50), 3.0), (_source("b", 70), 1.0), (_source("c", 9), 0.0)], seed=11)
    counts = Counter(e.data_source for e in sampler.next_batch(8000))
    # binomial(8000, 0.75): sd ~ 39, so +-200 is > 5 sd
    assert abs(counts["a"] - 6000) < 200
    assert counts["a"] + counts["b"] == 8000
    assert "c" not in counts
    assert sampler.stats()["returned"] == {"a": counts["a"], "b": counts["b"], "c": 0}


def test_each_epoch_visits_every_example_once_in_a_fresh_order():
    sampler = MixSampler([(_source("a", 20), 1.0)], seed=3)
    epochs = [[e.uid for e in sampler.next_batch(20)] for _ in range(3)]
    assert all(sorted(epoch) == sorted(f"a-{i}" for i in range(20)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert sampler.stats()["epochs"] == {"a": 2}
    other_seed = MixSampler([(_source("a", 20), 1.0)], seed=4)
    assert [e.uid for e in other_seed.next_batch(20)] != epochs[0]


def test_same_seed_same_batches():
    def make():
        return MixSampler([(_source("a", 13), 1.0), (_source("b", 7), 2.0)], seed=5)

    a, b = make(), make()
    assert [[e.uid for e in a.next_batch(6)] for _ in range(10)] == [
        [e.uid for e in b.next_batch(6)] for _ in range(10)
    ]


def test_resume_from_cursor_gives_exactly_the_uninterrupted_batches():
    def make():
        return MixSampler(
            [(_source("a", 13, lambda i: i), 1.0), (_source("b", 7), 2.0)],
            seed=9,
            prompt_filter=lambda e: len(e.prompt[0]["content"]) < 10,
        )

    def run(sampler, steps):
        return [[e.uid for e in sampler.next_batch(5)] for _ in range(steps)]

    straight = make()
    expected = run(straight, 4)
    straight.exclude({"b-3"})  # a between-stage filter, part of the cursor
    expected += run(straight, 8)

    first = make()
    got = run(first, 4)
    first.exclude({"b-3"})
    cursor = json.loads(json.dumps(first.state_dict()))  # it must survive JSON
    resumed = make()
    resumed.load_state_dict(cursor)
    got += run(resumed, 8)
    assert got == expected
    assert all("b-3" not in batch for batch in got[4:])
    assert resumed.stats() == straight.stats()
    assert resumed.stats()["dropped"]["filtered"] > 0


def test_cursor_refuses_other_data_or_seed():
    sampler = MixSampler([(_source("a", 5), 1.0)], seed=1)
    state = sampler.state_dict()
    with pytest.raises(ValueError, match="seed"):
        MixSampler([(_source("a", 5), 1.0)], seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="sources"):
        MixSampler([(_source("a", 6), 1.0)], seed=1).load_state_dict(state)


def test_prompt_filter_drops_and_counts_and_can_change_at_a_stage_boundary():
    long_every_third = _source("a", 30, lambda i: 50 if i % 3 == 0 else 5)
    sampler = MixSampler(
        [(long_every_third, 1.0)], seed=2, prompt_filter=lambda e: len(e.prompt[0]["content"]) <= 10
    )
    batch = sampler.next_batch(40)  # 40 of the 20 short ones: crosses an epoch
    assert all(len(e.prompt[0]["content"]) == 5 for e in batch)
    dropped = sampler.stats()["dropped"]["filtered"]
    assert 10 <= dropped <= 20  # all 10 long ones of epoch 0, and those of epoch 1 met before the 40th
    sampler.set_prompt_filter(lambda e: len(e.prompt[0]["content"]) <= 100)
    assert any(len(e.prompt[0]["content"]) == 50 for e in sampler.next_batch(30))
    assert sampler.stats()["dropped"]["filtered"] == dropped


def test_exclude_removes_prompts_and_a_fully_filtered_source_leaves_the_mix():
    a, b = _source("a", 10), _source("b", 10)
    sampler = MixSampler([(a, 1.0), (b, 1.0)], seed=0)
    sampler.exclude({f"a-{i}" for i in range(10)} | {"b-0"})
    batch = sampler.next_batch(30)
    assert {e.data_source for e in batch} == {"b"}
    assert "b-0" not in {e.uid for e in batch}
    stats = sampler.stats()
    assert stats["empty_sources"] == ["a"] and stats["excluded"] == 11 and stats["dropped"]["excluded"] >= 10
    sampler.exclude({f"b-{i}" for i in range(10)})
    with pytest.raises(RuntimeError, match="empty"):
        sampler.next_batch(1)


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="weight"):
        MixSampler([(_source("a", 3), -1.0)], seed=0)
    with pytest.raises(ValueError, match="no examples"):
        MixSampler([(_source("a", 0), 1.0)], seed=0)
    with pytest.raises(ValueError, match="zero"):
        MixSampler([(_source("a", 3), 0.0)], seed=0)
