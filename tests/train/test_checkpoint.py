"""Checkpoint manifests, checksum verification, fallback to the previous checkpoint, and pruning."""

from __future__ import annotations

import json

from or1_train import checkpoint as ckpt


def make_checkpoint(run_dir, step, payload=b"weights"):
    tmp = ckpt.staging_dir(run_dir, step)
    (tmp / ckpt.MODEL_DIR).mkdir()
    (tmp / ckpt.MODEL_DIR / "model.safetensors").write_bytes(payload * step)
    (tmp / ckpt.TRAINER_STATE).write_text(json.dumps({"step": step}))
    ckpt.write_manifest(tmp, step=step, stage=0, stage_name="short", metrics={"critic/score/mean": 0.5})
    return ckpt.finalize(tmp, run_dir, step)


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    info = make_checkpoint(tmp_path, 3)
    files = {f["path"]: f for f in info.manifest["files"]}
    assert set(files) == {"model/model.safetensors", "trainer_state.json"}
    weights = info.path / "model" / "model.safetensors"
    assert files["model/model.safetensors"]["size"] == weights.stat().st_size
    assert files["model/model.safetensors"]["sha256"] == ckpt.sha256_of(weights)
    assert info.manifest["step"] == 3 and info.manifest["metrics"] == {"critic/score/mean": 0.5}
    assert not list((tmp_path / "checkpoints").glob(".tmp-*")), "staging directory left behind"


def test_bad_checksum_is_refused_and_the_previous_checkpoint_is_used(tmp_path):
    make_checkpoint(tmp_path, 2)
    newest = make_checkpoint(tmp_path, 4)
    weights = newest.path / "model" / "model.safetensors"
    weights.write_bytes(b"X" * weights.stat().st_size)  # same size, different bytes
    warnings = []
    chosen = ckpt.newest_valid(tmp_path, warn=warnings.append)
    assert chosen is not None and chosen.step == 2
    assert warnings == [
        "refusing checkpoint step-000004: model/model.safetensors has a bad checksum (sha256 differs from the "
        "manifest); trying the previous one"
    ]


def test_missing_file_and_missing_manifest_are_refused(tmp_path):
    info = make_checkpoint(tmp_path, 1)
    (info.path / ckpt.TRAINER_STATE).unlink()
    warnings = []
    assert ckpt.newest_valid(tmp_path, warn=warnings.append) is None
    assert "trainer_state.json is missing" in warnings[0]
    (tmp_path / "checkpoints" / "step-000009").mkdir()
    assert ckpt.newest_valid(tmp_path, warn=warnings.append) is None
    assert any("step-000009: no manifest.json" in w for w in warnings)


def test_prune_keeps_the_newest(tmp_path):
    for step in (1, 2, 3, 4):
        make_checkpoint(tmp_path, step)
    deleted = ckpt.prune(tmp_path, keep_last=2)
    assert [p.name for p in deleted] == ["step-000001", "step-000002"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-000003", "step-000004"]
