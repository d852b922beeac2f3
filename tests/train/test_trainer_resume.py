"""SIGTERM at step k, then --resume, reproduces an uninterrupted run from step k on (issue 3's resume rule).

Runs the real CLI, the real torch actor and the real vLLM engine on a tiny random model. Filtering is off and the
entropy target is above the model's entropy, so every step updates the weights through the entropy bonus
(the controller raises alpha each step): the optimizer state, controller state and data cursor all have to
survive the checkpoint for the metrics to match.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from or1_train.telemetry import read_jsonl

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]  # three real trainer runs

STEPS = 6
VOLATILE = ("timing_s/", "perf/tokens_per_s")


def tiny_spec(tmp: Path, engine: str) -> dict:
    return {
        "name": "resume",
        "seed": 3,
        "model": {"path": str(tmp / "model"), "dtype": "float32", "bootstrap": {"distill_steps": 0}},
        "data": {
            "sources": [
                {
                    "name": "a",
                    "path": str(tmp / "a.jsonl"),
                    "synthetic": {"num_problems": 64, "levels": [1, 2], "seed": 1},
                }
            ]
        },
        "stages": [
            {
                "steps": 3,
                "max_prompt_tokens": 96,
                "max_response_tokens": 12,
                "rollout_batch": 4,
                "mini_batch": 2,
                "group_size": 2,
            },
            {
                "steps": STEPS - 3,
                "max_prompt_tokens": 96,
                "max_response_tokens": 16,
                "rollout_batch": 4,
                "mini_batch": 4,
                "group_size": 2,
            },
        ],
        "entropy": {"target": 50.0, "delta": 0.01, "max_coef": 0.1},
        "optim": {"lr": 0.01},
        "filter": {"enabled": False},
        "rollout": {"engine": engine},
        "evaluation": {"sets": [], "at_start": False},
        "checkpoints": {"every_steps": 0, "keep_last": 2},
    }


def run_cli(spec_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "or1_train", "run", str(spec_path), "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stable(records: list[dict]) -> dict[int, dict[str, float]]:
    return {
        r["step"]: {k: v for k, v in r["metrics"].items() if not k.startswith(VOLATILE)}
        for r in records
        if "critic/score/mean" in r["metrics"]
    }


@pytest.mark.parametrize("engine", ["vllm"])
def test_sigterm_then_resume_matches_an_uninterrupted_run(tmp_path, engine):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_spec(tmp_path, engine)))

    straight = run_cli(spec_path, tmp_path / "straight")
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, out
    expected = stable(read_jsonl(tmp_path / "straight" / "metrics.jsonl"))
    assert sorted(expected) == list(range(1, STEPS + 1))
    # lr 0.01 moves the weights a lot every step, yet the sampler's log-probs stay the actor's: the weight
    # push reaches vLLM after every update.
    assert all(expected[step]["rollout/logprob_gap_max"] < 1e-3 for step in expected), expected

    interrupted = run_cli(spec_path, tmp_path / "resumed")
    metrics = tmp_path / "resumed" / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not any(r["step"] >= 2 for r in read_jsonl(metrics)):
        assert interrupted.poll() is None, interrupted.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(interrupted.pid, signal.SIGTERM)
    out, _ = interrupted.communicate(timeout=300)
    assert interrupted.returncode == 143, out
    stopped_at = max(stable(read_jsonl(metrics)))
    assert 2 <= stopped_at < STEPS, "SIGTERM should stop the run before its end"
    events = read_jsonl(tmp_path / "resumed" / "events.jsonl")
    assert any(e["kind"] == "checkpoint" and "SIGTERM" in e["message"] for e in events)

    resumed = run_cli(spec_path, tmp_path / "resumed", "--resume")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    got = stable(read_jsonl(metrics))
    assert sorted(got) == list(range(1, STEPS + 1)), "every step exactly once"
    for step in range(stopped_at, STEPS + 1):
        for name, value in expected[step].items():
            assert got[step][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (step, name)
    resume_events = [e for e in read_jsonl(tmp_path / "resumed" / "events.jsonl") if e["kind"] == "resume"]
    assert json.dumps(resume_events).count(f"step {stopped_at}") == 1
