"""The synthetic arithmetic task: correct worked solutions, bounded values, seeded files in the row schema."""

import json
import random
import re

import pytest

from or1_train.data.sources import read_source
from or1_train.data.synthetic import (
    INSTRUCTION,
    MAX_VALUE,
    corpus_for_tokenizer,
    make_problem,
    resolve_levels,
    write_dataset,
)

_LINE = re.compile(r"^(\d+) ([-+*/]) (\d+) = (\d+)$")


def _check(problem):
    """Replays the worked solution against the prompt and returns the chain of values."""
    assert problem.prompt.endswith(INSTRUCTION)
    start = int(re.match(r"Start with (\d+)\.", problem.prompt).group(1))
    think, tail = problem.solution.split("\n</think>\n")
    assert think.startswith("<think>\n")
    lines = think.removeprefix("<think>\n").split("\n")
    assert len(lines) == problem.level
    value, values = start, [start]
    for line in lines:
        a, op, k, result = _LINE.match(line).groups()
        a, k, result = int(a), int(k), int(result)
        assert a == value
        if op == "/":
            assert a % k == 0
        expected = {"+": a + k, "-": a - k, "*": a * k, "/": a // k}[op]
        assert result == expected
        value = result
        values.append(value)
    assert tail == f"The answer is \\boxed{{{problem.answer}}}."
    assert int(problem.answer) == value
    return values


def test_every_level_gives_a_consistent_worked_solution_with_small_values():
    rng = random.Random(1)
    for level in range(1, 9):
        for _ in range(300):
            problem = make_problem(rng, level)
            assert problem.level == level
            assert all(0 <= v <= MAX_VALUE for v in _check(problem))


def test_solutions_grow_with_the_level():
    rng = random.Random(2)
    mean_len = {level: sum(len(make_problem(rng, level).solution) for _ in range(200)) / 200 for level in (1, 4, 8)}
    assert mean_len[1] < mean_len[4] < mean_len[8]
    assert mean_len[8] > 2.5 * mean_len[1]


def test_same_seed_same_problem_and_level_bounds():
    assert make_problem(random.Random(5), 3) == make_problem(random.Random(5), 3)
    with pytest.raises(ValueError, match="level"):
        make_problem(random.Random(0), 9)
    assert resolve_levels((2, 4)) == [2, 3, 4]
    assert resolve_levels([1, 8]) == [1, 8]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_dataset_rows_read_back_in_the_schema(tmp_path, suffix):
    path = write_dataset(tmp_path / f"arith{suffix}", 40, (1, 4), seed=3, with_solutions=True)
    data = read_source(path)
    assert not data.skipped
    assert len(data.examples) == 40
    assert len({e.uid for e in data.examples}) == 40
    levels = [e.extra["level"] for e in data.examples]
    assert [levels.count(level) for level in (1, 2, 3, 4)] == [10, 10, 10, 10]
    for example in data.examples:
        assert example.data_source == f"synthetic/arith-L{example.extra['level']}"
        assert example.ability == "math"
        assert example.prompt[0]["role"] == "user"
        assert example.extra["solution"].endswith(f"\\boxed{{{example.ground_truth}}}.")
    again = read_source(write_dataset(tmp_path / f"again{suffix}", 40, (1, 4), seed=3, with_solutions=True))
    assert [e.prompt for e in again.examples] == [e.prompt for e in data.examples]


def test_without_solutions_rows_carry_no_answer_text(tmp_path):
    path = write_dataset(tmp_path / "eval.jsonl", 5, [2], seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("solution" not in row for row in rows)
    assert all(row["reward_model"]["ground_truth"] for row in rows)


def test_tokenizer_corpus_is_chat_formatted_over_all_levels():
    corpus = corpus_for_tokenizer(seed=0, n=16)
    assert len(corpus) == 16
    assert all(t.startswith("<|im_start|>user\n") and "<|im_start|>assistant\n<think>" in t for t in corpus)
    assert corpus == corpus_for_tokenizer(seed=0, n=16)
    # Every other text is a checked solution: one step line and one "Verify:" line per level.
    assert [("Verify:" in t) for t in corpus] == [False, True] * 8
    assert sum(t.count(" = ") for t in corpus[0::2]) == sum(range(1, 9, 2)) * 2
    assert sum(t.count(" = ") for t in corpus[1::2]) == sum(range(2, 9, 2)) * 2 * 2


_VERIFY = re.compile(r"^Verify: (\d+) ([-+*/]) (\d+) = (\d+)$")


def test_a_checked_solution_verifies_every_step_by_its_inverse():
    rng = random.Random(4)
    for level in range(1, 9):
        for _ in range(100):
            problem = make_problem(rng, level)
            think, tail = problem.checked_solution.split("\n</think>\n")
            assert tail == problem.solution.split("\n</think>\n")[1]
            lines = think.removeprefix("<think>\n").split("\n")
            assert lines[0::2] == problem.solution.split("\n</think>\n")[0].removeprefix("<think>\n").split("\n")
            for step, check in zip(lines[0::2], lines[1::2], strict=True):
                a, _, k, result = _LINE.match(step).groups()
                back, op, k2, value = _VERIFY.match(check).groups()
                assert (back, k2, value) == (result, k, a)
                assert {
                    "+": int(back) + int(k2),
                    "-": int(back) - int(k2),
                    "*": int(back) * int(k2),
                    "/": int(back) // int(k2),
                }[op] == int(value)


def test_a_seeded_share_of_rows_carry_the_checked_solution_and_the_problems_stay_the_same(tmp_path):
    plain = read_source(write_dataset(tmp_path / "plain.jsonl", 200, (1, 4), seed=3, with_solutions=True))
    mixed = read_source(
        write_dataset(tmp_path / "mixed.jsonl", 200, (1, 4), seed=3, with_solutions=True, checked_share=0.6)
    )
    assert [e.prompt for e in mixed.examples] == [e.prompt for e in plain.examples]
    checked = sum("Verify:" in e.extra["solution"] for e in mixed.examples)
    assert 100 < checked < 140 and not any("Verify:" in e.extra["solution"] for e in plain.examples)
    with pytest.raises(ValueError, match="checked_share"):
        write_dataset(tmp_path / "bad.jsonl", 5, (1, 2), seed=0, with_solutions=True, checked_share=1.5)
