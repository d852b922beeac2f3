"""The shipped synthetic math task: multi-step arithmetic with a worked chain of thought.

A problem of level L is a chain of L operations (add, subtract, multiply, exact divide) on small integers.
It stands in for competition math on a CPU: it is verifiable (one integer in `\\boxed{}`), its difficulty is
a dial (each level adds one step the model can get wrong), and its worked solution grows linearly with the
level (one line of about ten tokens per step, since the Qwen2 pre-tokenizer splits digits singly), so a short
context stage truncates the long problems and a longer stage lifts them, as in the paper's staged schedule.

Every value stays in 0..max_value and a division is only offered when it is exact, so each step is one fact
a small model can learn. The prompt ends with the same instruction as OR1's eval data.

Each problem also has a checked solution that verifies every step by its inverse ("Verify: 15 - 3 = 12"), about
twice as long, as distilled reasoning models re-check their work. A warm start on a mix of both styles gives a
model that is sometimes needlessly verbose, so a short context stage truncates its checked answers and RL
learns to keep only the checks that fit: the paper's 8K stage shortens R1-Distill's responses the same way
(the dossier's multi-stage ablation).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_LEVEL, MAX_LEVEL = 1, 8
MAX_VALUE = 999
INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
DATA_SOURCE_PREFIX = "synthetic/arith-L"

# Operand ranges. Small operands keep each step one fact a small model can learn on a CPU: with operands up
# to 20 and factors up to 5, the demo model (hidden 64, 2 layers) got 20% of single steps right after 1,000
# warm-start steps (12% of level 1-4 problems at T = 1); with these it solves 21% of them, and 44% of level 1.
_START = (2, 20)
_ADD = (1, 9)
_MUL = (2, 3)
_DIV = (2, 5)


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    solution: str
    checked_solution: str
    level: int


def _feasible_steps(value: int, rng: random.Random, max_value: int) -> list[tuple[str, int]]:
    """Candidate (operator, operand) pairs that keep the value an integer in 0..max_value."""
    steps: list[tuple[str, int]] = []
    add = rng.randint(*_ADD)
    if value + add <= max_value:
        steps.append(("+", add))
    if value >= 1:
        steps.append(("-", rng.randint(1, min(_ADD[1], value))))
    mul = rng.randint(*_MUL)
    if 1 <= value and value * mul <= max_value:
        steps.append(("*", mul))
    divisors = [d for d in range(_DIV[0], _DIV[1] + 1) if value >= d and value % d == 0]
    if divisors:
        steps.append(("/", rng.choice(divisors)))
    return steps


_PHRASES = {"+": "Add {k}.", "-": "Subtract {k}.", "*": "Multiply by {k}.", "/": "Divide by {k}."}
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _apply(value: int, op: str, k: int) -> int:
    if op == "+":
        return value + k
    if op == "-":
        return value - k
    if op == "*":
        return value * k
    return value // k


def make_problem(rng: random.Random, level: int, *, max_value: int = MAX_VALUE) -> Problem:
    """One problem of `level` steps drawn from `rng` (the same rng state gives the same problem)."""
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"level must be in {MIN_LEVEL}..{MAX_LEVEL}, got {level}")
    if max_value < _START[1] + _ADD[1]:
        raise ValueError(f"max_value must be at least {_START[1] + _ADD[1]}, got {max_value}")
    value = rng.randint(*_START)
    phrases = [f"Start with {value}."]
    lines, checked = [], []
    for _ in range(level):
        op, k = rng.choice(_feasible_steps(value, rng, max_value))
        result = _apply(value, op, k)
        phrases.append(_PHRASES[op].format(k=k))
        lines.append(f"{value} {op} {k} = {result}")
        checked += [lines[-1], f"Verify: {result} {_INVERSE[op]} {k} = {value}"]
        value = result
    prompt = " ".join(phrases) + " What is the result?\n" + INSTRUCTION
    tail = "\n</think>\nThe answer is \\boxed{" + str(value) + "}."
    return Problem(
        prompt=prompt,
        answer=str(value),
        solution="<think>\n" + "\n".join(lines) + tail,
        checked_solution="<think>\n" + "\n".join(checked) + tail,
        level=level,
    )


def resolve_levels(levels: Sequence[int] | tuple[int, int]) -> list[int]:
    """A tuple (lo, hi) means every level lo..hi inclusive; a list means exactly those levels."""
    if isinstance(levels, tuple):
        if len(levels) != 2:
            raise ValueError(f"a levels tuple must be (lo, hi), got {levels!r}")
        resolved = list(range(levels[0], levels[1] + 1))
    else:
        resolved = list(levels)
    if not resolved:
        raise ValueError(f"no levels in {levels!r}")
    for level in resolved:
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(f"level must be in {MIN_LEVEL}..{MAX_LEVEL}, got {level}")
    return resolved


def problem_row(problem: Problem, *, seed: int, index: int, with_solution: bool, checked: bool = False) -> dict:
    """A row in OR1's released schema (`reward_model.ground_truth`, `extra_info`), which `parse_row` reads.

    The id mixes in a hash of the prompt so that files written with the same seed but other levels or sizes
    never give two different problems the same uid. `checked` picks the self-verifying solution.
    """
    digest = hashlib.blake2b(problem.prompt.encode(), digest_size=4).hexdigest()
    row = {
        "id": f"arith-{seed}-{index}-{digest}",
        "data_source": f"{DATA_SOURCE_PREFIX}{problem.level}",
        "prompt": [{"role": "user", "content": problem.prompt}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": problem.answer},
        "extra_info": {"level": problem.level, "index": index},
    }
    if with_solution:
        row["solution"] = problem.checked_solution if checked else problem.solution
    return row


def write_dataset(
    path: str | Path,
    n: int,
    levels: Sequence[int] | tuple[int, int],
    seed: int,
    *,
    with_solutions: bool = False,
    max_value: int = MAX_VALUE,
    checked_share: float = 0.0,
) -> Path:
    """Write `n` problems to `path` (JSONL, or Parquet when the suffix is .parquet); levels cycle evenly.

    With solutions, a seeded `checked_share` of the rows carry the checked (self-verifying) solution; the
    problems themselves are the same for any share, since the choice draws from its own generator.
    """
    if not 0.0 <= checked_share <= 1.0:
        raise ValueError(f"checked_share must be in [0, 1], got {checked_share}")
    path = Path(path)
    level_list = resolve_levels(levels)
    rng = random.Random(seed)
    style_rng = random.Random(f"checked-{seed}")
    rows = [
        problem_row(
            make_problem(rng, level_list[i % len(level_list)], max_value=max_value),
            seed=seed,
            index=i,
            with_solution=with_solutions,
            checked=style_rng.random() < checked_share,
        )
        for i in range(n)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def chatml(messages: Sequence[dict]) -> str:
    """The ChatML text that `or1_train.model`'s chat template renders (kept in one format on purpose)."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def corpus_for_tokenizer(seed: int, n: int, *, max_value: int = MAX_VALUE) -> list[str]:
    """`n` chat-formatted prompt + worked solution texts over all levels, to train the BPE on.

    Every other text holds the checked solution, so "Verify" is one token as "Subtract" is.
    """
    rng = random.Random(seed)
    corpus = []
    for i in range(n):
        problem = make_problem(rng, MIN_LEVEL + i % (MAX_LEVEL - MIN_LEVEL + 1), max_value=max_value)
        solution = problem.checked_solution if i % 2 else problem.solution
        corpus.append(
            chatml(
                [
                    {"role": "user", "content": problem.prompt},
                    {"role": "assistant", "content": solution},
                ]
            )
        )
    return corpus
