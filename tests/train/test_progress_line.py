"""The trainer's progress line on stdout: what a researcher reads in the terminal and in the run's log tail."""

from __future__ import annotations

import io

from or1_train.telemetry import ProgressSink


def record(step: int, **metrics: float) -> dict:
    return {"step": step, "stage": 0, "metrics": metrics}


def test_the_eta_is_unknown_until_a_step_has_been_timed_then_follows_the_step_time(monkeypatch):
    clock = iter([100.0, 110.0, 130.0])
    monkeypatch.setattr("or1_train.telemetry.time.monotonic", lambda: next(clock))
    out = io.StringIO()
    sink = ProgressSink(total_steps=12, stream=out)
    sink.metrics(record(1, **{"critic/score/mean": 0.25, "actor/entropy_loss": 0.1}))
    sink.metrics(record(2, **{"critic/score/mean": 0.5}))
    sink.metrics({"step": 2, "stage": 0, "metrics": {"val/arith/avg@4": 0.3}})  # eval records print nothing
    sink.metrics(record(3, **{"batch/skipped": 1.0}))
    lines = out.getvalue().splitlines()
    assert lines[0] == "step 1/12 | stage 0 | reward 0.250 | entropy 0.100 | ETA after the next step"
    assert lines[1] == "step 2/12 | stage 0 | reward 0.500 | ETA 1m40s"  # 10 s a step, 10 steps left
    assert lines[2] == "step 3/12 | stage 0 | skipped (no informative group) | ETA 2m15s"  # 15 s a step, 9 left
    assert len(lines) == 3
