"""The checkpoint registry: a project's checkpoints with their scores, and the files one may download.

A checkpoint directory holds HF-format weights (``model/``), optimizer and trainer state, and the manifest
that lists every file with its size and sha256 (``or1_train/checkpoint.py``). What may be downloaded is
exactly what the manifest lists, resolved inside the checkpoint's directory: a path that climbs out of it
(``..``, an absolute path, a symlink pointing elsewhere) or a file the manifest does not name is "not found",
so a download link can never read anything else on the host.
"""

from __future__ import annotations

from pathlib import Path

from django.db.models import Prefetch, QuerySet

from experiments.models import Checkpoint, EvaluationResult

MODEL_DIR = "model"
MANIFEST = "manifest.json"


def with_scores(checkpoints: QuerySet[Checkpoint]) -> QuerySet[Checkpoint]:
    """Checkpoints with their run, experiment and evaluation results loaded (a table without N+1 queries)."""
    return checkpoints.select_related("run__experiment__project__team").prefetch_related(
        Prefetch("evaluations", queryset=EvaluationResult.objects.order_by("benchmark", "k"))
    )


def hf_path(checkpoint: Checkpoint) -> str:
    """The HF-format model directory (what ``from_pretrained`` or vLLM loads)."""
    return str(Path(checkpoint.path) / MODEL_DIR) if checkpoint.path else ""


def listed_files(checkpoint: Checkpoint) -> list[dict]:
    """The manifest's files ({path, size, sha256}), only well-formed entries."""
    files = checkpoint.manifest.get("files", []) if isinstance(checkpoint.manifest, dict) else []
    return [
        {"path": f["path"], "size": f.get("size"), "sha256": f.get("sha256")}
        for f in files
        if isinstance(f, dict) and isinstance(f.get("path"), str)
    ]


def scores(checkpoint: Checkpoint) -> list[dict]:
    """Its evaluation results, and those its run logged at its step (evaluated during training)."""
    results = list(checkpoint.evaluations.all())
    if not results:
        results = list(
            EvaluationResult.objects.filter(run_id=checkpoint.run_id, step=checkpoint.step).order_by("benchmark")
        )
    return [
        {"benchmark": r.benchmark, "k": r.k, "avg_at_k": r.avg_at_k, "pass_at_k": r.pass_at_k,
         "num_samples": r.num_samples, "temperature": r.temperature}
        for r in results
    ]


def resolve_file(checkpoint: Checkpoint, name: str) -> Path | None:
    """The file ``name`` of the checkpoint on disk, when the manifest lists it and it lies inside the
    checkpoint's directory; else None. ``manifest.json`` itself is always downloadable."""
    if not checkpoint.path:
        return None
    root = Path(checkpoint.path).resolve()
    if name != MANIFEST and name not in {f["path"] for f in listed_files(checkpoint)}:
        return None
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate
