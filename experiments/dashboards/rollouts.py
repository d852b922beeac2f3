"""Reading the trainer's sampled rollout groups from a run directory (format: ``or1_train/rollout_log.py``).

Files are ``<run_dir>/rollouts/step-NNNNNN.jsonl``, one group per line. The platform only reads: it lists the
steps that have a file, and parses one step's groups for the rollout browser. A run directory is written by a
trainer, so nothing in it is trusted: only names matching the pattern are opened, files are read up to a size
limit, and a malformed line is counted and skipped rather than failing the page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROLLOUTS_DIR = "rollouts"
STEP_FILE = re.compile(r"^step-(\d{6,10})\.jsonl$")
MAX_BYTES = 32 * 1024 * 1024
MAX_GROUPS = 64
FILTER_LABELS = {
    "solve_all": "all correct",
    "solve_none": "none correct",
    "no_advantage": "equal rewards",
    "batch_full": "batch already full",
}


def rollouts_dir(run_dir: str) -> Path | None:
    if not run_dir:
        return None
    path = Path(run_dir) / ROLLOUTS_DIR
    return path if path.is_dir() else None


def steps(run_dir: str) -> list[int]:
    """The steps that have a rollout file, in order."""
    folder = rollouts_dir(run_dir)
    if folder is None:
        return []
    found = []
    for entry in folder.iterdir():
        match = STEP_FILE.match(entry.name)
        if match and entry.is_file():
            found.append(int(match[1]))
    return sorted(found)


@dataclass
class Response:
    text: str
    reward: float
    truncated: bool
    length: int
    advantage: float
    text_chars: int | None = None

    @property
    def correct(self) -> bool:
        return self.reward >= 1.0


@dataclass
class Group:
    index: int
    uid: str
    data_source: str
    prompt: str
    ground_truth: str
    kept: bool
    filter_reason: str | None
    reward_mean: float
    reward_std: float
    responses: list[Response] = field(default_factory=list)

    @property
    def filter_label(self) -> str:
        return FILTER_LABELS.get(self.filter_reason or "", self.filter_reason or "not trained on")

    @property
    def solved(self) -> int:
        return sum(r.correct for r in self.responses)

    @property
    def truncated(self) -> int:
        return sum(r.truncated for r in self.responses)


@dataclass
class StepRollouts:
    step: int
    groups: list[Group]
    skipped_lines: int = 0
    clipped: bool = False  # the file was larger than MAX_BYTES or had more than MAX_GROUPS groups


def read_step(run_dir: str, step: int) -> StepRollouts | None:
    folder = rollouts_dir(run_dir)
    if folder is None:
        return None
    path = folder / f"step-{step:06d}.jsonl"
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    result = StepRollouts(step, [], clipped=len(raw) > MAX_BYTES)
    for line in raw[:MAX_BYTES].splitlines():
        if len(result.groups) >= MAX_GROUPS:
            result.clipped = True
            break
        try:
            result.groups.append(_group(json.loads(line)))
        except (ValueError, TypeError, KeyError, AttributeError):
            result.skipped_lines += 1
    return result


def _group(row: dict) -> Group:
    responses = [
        Response(
            text=str(r["text"]),
            reward=float(r["reward"]),
            truncated=bool(r["truncated"]),
            length=int(r["length"]),
            advantage=float(r["advantage"]),
            text_chars=int(r["text_chars"]) if r.get("text_chars") is not None else None,
        )
        for r in row["responses"]
    ]
    return Group(
        index=int(row["index"]),
        uid=str(row.get("uid", "")),
        data_source=str(row.get("data_source", "")),
        prompt=str(row["prompt"]),
        ground_truth=str(row.get("ground_truth", "")),
        kept=bool(row["kept"]),
        filter_reason=row.get("filter_reason"),
        reward_mean=float(row["reward_mean"]),
        reward_std=float(row["reward_std"]),
        responses=responses,
    )
