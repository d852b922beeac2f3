"""Checkpoint retention: which checkpoint directories of a run to keep and which to delete, and deleting them.

``plan(run_dir, policy)`` looks only at the run directory, the source of truth: the finished checkpoint
directories (``checkpoints/step-NNNNNN/`` with their ``manifest.json``, see ``or1_train/checkpoint.py``) and
the scores in ``metrics.jsonl``. It keeps

    newest      the highest step: the checkpoint a ``--resume`` starts from, always
    last K      the ``keep_last`` newest
    best N      the ``keep_best`` best by the policy's metric at the checkpoint's step (ties: the newer);
                the metric is the one named, or, when none is, the mean of every ``val/<set>/avg@<k>``
    unreadable  a directory whose manifest cannot be read: nothing is deleted that is not understood

and deletes the rest. ``apply(plan)`` deletes exactly ``plan.delete``, so a dry run (printing the plan) lists
exactly what the real run removes. Each directory is first renamed out of the ``step-`` namespace and then
removed, so a deletion cut short never leaves a partial directory that a resume could mistake for a
checkpoint. Django is not needed here; ``prune_checkpoints`` maps projects' policies onto run directories.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from or1_train.checkpoint import MANIFEST, list_checkpoints
from or1_train.telemetry import METRICS_FILE

DEFAULT_METRIC = re.compile(r"^val/.+/avg@\d+$")
_STEP_NAME = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True)
class Policy:
    keep_last: int
    keep_best: int = 1
    metric: str = ""  # "" = the mean of every val/<set>/avg@<k> at the step
    higher_is_better: bool = True

    def __post_init__(self):
        if self.keep_last < 1 or self.keep_best < 1:
            raise ValueError(
                "a retention policy keeps at least the newest and the best checkpoint (K, N >= 1)"
            )

    @classmethod
    def of(cls, model) -> Policy:
        """From an ``experiments.models.RetentionPolicy`` row."""
        return cls(model.keep_last, model.keep_best, model.best_metric, model.higher_is_better)

    @property
    def metric_label(self) -> str:
        return self.metric or "mean of val/*/avg@k"


@dataclass(frozen=True)
class Decision:
    path: Path
    step: int
    keep: bool
    reasons: tuple[str, ...]
    score: float | None
    size_bytes: int

    def describe(self) -> str:
        size = human_bytes(self.size_bytes)
        score = "" if self.score is None else f", score {self.score:.4g}"
        why = f" ({', '.join(self.reasons)})" if self.reasons else ""
        return f"{'keep' if self.keep else 'delete'} {self.path}{why} [{size}{score}]"


@dataclass
class Plan:
    run_dir: Path
    policy: Policy
    decisions: list[Decision] = field(default_factory=list)

    @property
    def keep(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def delete(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def bytes_freed(self) -> int:
        return sum(d.size_bytes for d in self.delete)


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _score(metrics: dict, policy: Policy) -> float | None:
    if policy.metric:
        return _finite(metrics.get(policy.metric))
    values = [v for k, v in metrics.items() if DEFAULT_METRIC.match(k) and _finite(v) is not None]
    return sum(values) / len(values) if values else None


def metrics_at_steps(run_dir: Path, steps: set[int]) -> dict[int, dict]:
    """Every metric logged at ``steps`` in ``metrics.jsonl`` (training and evaluation records merged)."""
    found: dict[int, dict] = {step: {} for step in steps}
    try:
        handle = open(run_dir / METRICS_FILE, encoding="utf-8")
    except FileNotFoundError:
        return found
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if (
                isinstance(record, dict)
                and record.get("step") in found
                and isinstance(record.get("metrics"), dict)
            ):
                found[record["step"]].update(record["metrics"])
    return found


def _read_manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def plan(run_dir: Path, policy: Policy) -> Plan:
    run_dir = Path(run_dir)
    entries = []
    for path in list_checkpoints(run_dir):
        match = _STEP_NAME.match(path.name)
        if match:
            entries.append((int(match.group(1)), path, _read_manifest(path)))
    result = Plan(run_dir, policy)
    if not entries:
        return result
    logged = metrics_at_steps(run_dir, {step for step, _, _ in entries})
    scores = {}
    for step, _, manifest in entries:
        metrics = dict((manifest or {}).get("metrics") or {}) | logged[step]
        scores[step] = _score(metrics, policy)

    reasons: dict[int, list[str]] = {step: [] for step, _, _ in entries}
    by_step = sorted(step for step, _, _ in entries)
    reasons[by_step[-1]].append("newest")
    for step in by_step[-policy.keep_last :][:-1]:
        reasons[step].append(f"last {policy.keep_last}")
    sign = 1 if policy.higher_is_better else -1
    ranked = sorted(
        (s for s in by_step if scores[s] is not None), key=lambda s: (sign * scores[s], s), reverse=True
    )
    for rank, step in enumerate(ranked[: policy.keep_best], start=1):
        reasons[step].append(f"best {policy.metric_label}" if policy.keep_best == 1 else f"best #{rank}")
    for step, _, manifest in entries:
        if manifest is None:
            reasons[step].append("manifest unreadable: left alone")

    for step, path, manifest in sorted(entries, key=lambda e: e[0]):
        size = int((manifest or {}).get("size_bytes") or 0)
        result.decisions.append(
            Decision(path, step, bool(reasons[step]), tuple(reasons[step]), scores[step], size)
        )
    return result


def apply(plan: Plan) -> list[Path]:
    """Delete the plan's ``delete`` checkpoints; returns those deleted (one already gone is skipped)."""
    deleted = []
    for decision in plan.delete:
        if not decision.path.is_dir():
            continue
        doomed = decision.path.with_name(f".deleting-{decision.path.name}")
        decision.path.rename(doomed)
        shutil.rmtree(doomed)
        deleted.append(decision.path)
    return deleted


def human_bytes(size: int) -> str:
    value, units = float(size), ["B", "KiB", "MiB", "GiB", "TiB"]
    for unit in units[:-1]:
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {units[-1]}"
