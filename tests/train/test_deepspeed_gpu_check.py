"""bench/gpu_check.sh in its CPU mode (2 DeepSpeed ranks, vLLM, the trainer's CLI): it runs and reports.

On a GPU host the same script runs a larger model on every GPU; CI has none, so this keeps the script, the
bench behind it and the multi-rank trainer path from rotting (about a minute here).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.deepspeed, pytest.mark.vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_on_a_cpu_and_prints_its_figures(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "gpu-check"), "PY": str(REPO / ".venv" / "bin" / "python")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh")], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=400,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "no GPU; the CPU mode" in out
    assert "engine deepspeed ZeRO-3 x2 ranks, rollout vllm" in out
    for phase in ("rollout", "reward", "old log-probs", "update", "weight push", "whole step"):
        seconds = float(re.search(rf"^  {phase}\s+([0-9.]+) s$", out, re.M).group(1))
        assert 0.0 < seconds < 60.0, phase
    for figure in ("rollout tokens/s", "update tokens/s"):
        assert float(re.search(rf"{figure}\s+([0-9]+)", out).group(1)) > 0, figure
    assert re.search(r"MFU n/a: [0-9.]+ TFLOP/s achieved", out)
    actor, process = map(
        float, re.search(r"peak memory: actor ([0-9.]+) GiB.* RSS ([0-9.]+) GiB", out).groups()
    )
    assert 0.1 < actor < 20 and 0.1 < process < 20
    metrics = (tmp_path / "gpu-check" / "run" / "metrics.jsonl").read_text().splitlines()
    assert (
        len(metrics) == 3 and (tmp_path / "gpu-check" / "run" / "ranks" / "rank-1" / "metrics.jsonl").exists()
    )
