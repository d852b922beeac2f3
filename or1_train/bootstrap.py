"""Build what a spec needs but does not exist yet: synthetic dataset files and the CPU demo model.

No pretrained weights can be downloaded on our CPU machines, so ``model.bootstrap`` describes a small Qwen2 to
build with a locally trained tokenizer and warm-start on worked solutions (standing in for a distilled
reasoning model). Sources and eval sets with a ``synthetic`` block get their files generated. Everything is
seeded, so two machines build the same model and data from the same spec.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from or1_train.spec import ModelBootstrap, RunSpec, SyntheticTask

DISTILL_PROBLEMS = 4000
TOKENIZER_CORPUS = 4000


def ensure_synthetic(path: Path, task: SyntheticTask) -> bool:
    """Write the synthetic dataset at ``path`` unless it exists; True when it was written."""
    if path.exists():
        return False
    from or1_train.data.synthetic import write_dataset

    partial = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")  # same suffix: same file format
    write_dataset(partial, task.num_problems, task.levels, task.seed, max_value=task.max_value)
    partial.replace(path)  # atomic: a concurrent run sees no file or the whole file, and both write the same
    return True


def ensure_model(path: Path, boot: ModelBootstrap, log: Callable[[str], None] = print) -> bool:
    """Build and warm-start the bootstrap model at ``path`` unless a model is there; True when built.

    A lock file beside ``path`` makes a second run that needs the same model wait for the first one's build
    instead of racing it; a half-built staging directory left by a killed build is removed and redone.
    """
    if (path / "config.json").exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / "config.json").exists():
            return False
        _build_model(path, boot, log)
    return True


def _build_model(path: Path, boot: ModelBootstrap, log: Callable[[str], None]) -> None:
    from or1_train.data.synthetic import corpus_for_tokenizer, write_dataset
    from or1_train.distill import distill
    from or1_train.model import ModelInitConfig, init_model

    config = ModelInitConfig(
        hidden_size=boot.hidden_size,
        num_layers=boot.num_layers,
        num_heads=boot.num_heads,
        num_kv_heads=boot.num_kv_heads,
        max_positions=boot.max_positions,
        vocab_size=boot.vocab_size,
        seed=boot.seed,
    )
    staging = path.with_name(path.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    log(f"building model {path} (Qwen2, hidden {boot.hidden_size}, {boot.num_layers} layers)")
    init_model(staging, config, corpus_for_tokenizer(boot.seed, TOKENIZER_CORPUS))
    if boot.distill_steps:
        solutions = write_dataset(
            staging / "distill.jsonl",
            DISTILL_PROBLEMS,
            boot.distill_levels,
            boot.seed + 7,
            with_solutions=True,
            max_value=boot.distill_max_value,
            checked_share=boot.distill_checked_share,
        )
        log(f"warm-starting it on worked solutions ({boot.distill_steps} steps)")
        distill(staging, solutions, staging, steps=boot.distill_steps, lr=boot.distill_lr, seed=boot.seed)
        solutions.unlink()
    staging.rename(path)  # only a finished model ever appears at `path`


def ensure_inputs(spec: RunSpec, log: Callable[[str], None] = print) -> None:
    """Generate every missing synthetic file and the bootstrap model of ``spec``."""
    for source in spec.data.sources:
        if source.synthetic is not None and ensure_synthetic(Path(source.path), source.synthetic):
            log(f"wrote synthetic source {source.path}")
    for eval_set in spec.evaluation.sets:
        if eval_set.synthetic is not None and ensure_synthetic(Path(eval_set.path), eval_set.synthetic):
            log(f"wrote synthetic eval set {eval_set.path}")
    if spec.model.bootstrap is not None:
        ensure_model(Path(spec.model.path), spec.model.bootstrap, log)
