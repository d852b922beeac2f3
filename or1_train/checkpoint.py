"""Checkpoints: HF-format weights, optimizer and trainer state, and a manifest with checksums.

Layout of ``<run_dir>/checkpoints/step-000040/``::

    model/              save_pretrained + tokenizer: loadable by transformers and vLLM as is
    optimizer.pt        the actor engine's optimizer state
    trainer_state.json  step, stage, entropy controller, data cursor, RNG states
    manifest.json       stage, step, metrics at that step, every file with its size and sha256

A checkpoint is written into a temporary directory and renamed into place, so a kill mid-save never leaves
a half checkpoint that looks complete. ``--resume`` takes the newest checkpoint whose files match their
manifest; one with a bad checksum is refused with a clear message and the previous one is used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTS_DIR = "checkpoints"
MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.json"
MODEL_DIR = "model"
OPTIMIZER_FILE = "optimizer.pt"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    manifest: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    def trainer_state(self) -> dict[str, Any]:
        return json.loads((self.path / TRAINER_STATE).read_text())


class CheckpointError(RuntimeError):
    """A checkpoint that must not be used, with the reason."""


def write_manifest(directory: Path, *, step: int, stage: int, stage_name: str, metrics: dict[str, float]) -> dict:
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        files.append({"path": str(path.relative_to(directory)), "size": path.stat().st_size, "sha256": sha256_of(path)})
    manifest = {
        "format": "or1lab-checkpoint/1",
        "step": step,
        "stage": stage,
        "stage_name": stage_name,
        "created_at": time.time(),
        "metrics": metrics,
        "model_dir": MODEL_DIR,
        "files": files,
        "size_bytes": sum(f["size"] for f in files),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def finalize(tmp_dir: Path, run_dir: Path, step: int) -> CheckpointInfo:
    """Move a fully written temporary checkpoint into place (atomic rename on one filesystem)."""
    final = run_dir / CHECKPOINTS_DIR / checkpoint_name(step)
    if final.exists():
        shutil.rmtree(final)
    tmp_dir.rename(final)
    return CheckpointInfo(final, step, json.loads((final / MANIFEST).read_text()))


def staging_dir(run_dir: Path, step: int) -> Path:
    tmp = run_dir / CHECKPOINTS_DIR / f".tmp-{checkpoint_name(step)}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def verify(path: Path) -> CheckpointInfo:
    """Check every file against the manifest; raise CheckpointError naming the first problem."""
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise CheckpointError(f"{path.name}: no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path.name}: {MANIFEST} is not valid JSON ({exc})") from None
    for entry in manifest.get("files", []):
        file = path / entry["path"]
        if not file.exists():
            raise CheckpointError(f"{path.name}: {entry['path']} is missing")
        if file.stat().st_size != entry["size"]:
            raise CheckpointError(
                f"{path.name}: {entry['path']} has size {file.stat().st_size}, manifest says {entry['size']}"
            )
        if sha256_of(file) != entry["sha256"]:
            raise CheckpointError(f"{path.name}: {entry['path']} has a bad checksum (sha256 differs from the manifest)")
    return CheckpointInfo(path, int(manifest["step"]), manifest)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoint directories, oldest first."""
    root = run_dir / CHECKPOINTS_DIR
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))


def newest_valid(run_dir: Path, warn: Any = print) -> CheckpointInfo | None:
    """The newest checkpoint that verifies; refused ones are reported through ``warn`` with the reason."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return verify(path)
        except CheckpointError as exc:
            warn(f"refusing checkpoint {exc}; trying the previous one")
    return None


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints; returns what was deleted."""
    doomed = list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed
