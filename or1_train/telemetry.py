"""Telemetry: where a run's metrics and events go.

``metrics.jsonl`` and ``events.jsonl`` in the run directory are the source of truth (the platform can always
rebuild a run from them); every other sink (stdout progress, the platform's HTTP ingestion) is a copy. A sink
that fails must never stop training, so :class:`Telemetry` isolates each one.

Metric names follow the released Skywork-OR1 code (dossier §7.3); ``docs/metrics.md`` lists them all.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Protocol, TextIO

METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"


class Sink(Protocol):
    """Receives every metric record and event the trainer emits."""

    def metrics(self, record: dict[str, Any]) -> None: ...

    def event(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _json_value(value: Any) -> Any:
    """NaN and infinities are not JSON; they are kept as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


class JsonlSink:
    """Appends one JSON object per line and flushes it at once, so a crash loses nothing written."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._events = open(run_dir / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def _write(self, handle: TextIO, record: dict[str, Any]) -> None:
        clean = dict(record)
        if "metrics" in clean:
            clean["metrics"] = {k: _json_value(v) for k, v in clean["metrics"].items()}
        handle.write(json.dumps(clean, allow_nan=False) + "\n")
        handle.flush()

    def metrics(self, record: dict[str, Any]) -> None:
        self._write(self._metrics, record)

    def event(self, record: dict[str, Any]) -> None:
        self._write(self._events, record)

    def close(self) -> None:
        self._metrics.close()
        self._events.close()


def _eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressSink:
    """A readable progress line per step: step/total, stage, reward, entropy, ETA."""

    def __init__(self, total_steps: int, stream: TextIO | None = None):
        self.total_steps = total_steps
        self.stream = stream or sys.stdout
        self._started: float | None = None
        self._first_step: int | None = None

    def metrics(self, record: dict[str, Any]) -> None:
        step, m = record["step"], record["metrics"]
        if "critic/score/mean" not in m and "batch/skipped" not in m:
            return  # an evaluation record: the eval event prints it
        now = time.monotonic()
        if self._started is None:  # the clock starts at the first step's end: setup and warm-up are not steps
            self._started, self._first_step = now, step
        done = step - self._first_step
        eta = (now - self._started) / done * (self.total_steps - step) if done else None
        parts = [f"step {step}/{self.total_steps}", f"stage {record['stage']}"]
        if "critic/score/mean" in m:
            parts.append(f"reward {m['critic/score/mean']:.3f}")
        if "actor/entropy_loss" in m:
            parts.append(f"entropy {m['actor/entropy_loss']:.3f}")
        if "actor/entropy_coeff_realized" in m:
            parts.append(f"alpha {m['actor/entropy_coeff_realized']:.4f}")
        if "response_length/clip_ratio" in m:
            parts.append(f"trunc {m['response_length/clip_ratio']:.2f}")
        if m.get("batch/skipped"):
            parts.append("skipped (no informative group)")
        parts.append(f"ETA {_eta(eta)}" if eta is not None else "ETA after the next step")
        print(" | ".join(parts), file=self.stream, flush=True)

    def event(self, record: dict[str, Any]) -> None:
        if record["kind"] in {"stage_start", "checkpoint", "eval", "warning", "run_end", "resume"}:
            print(f"[{record['kind']}] {record['message']}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class Telemetry:
    """Fans records out to the sinks; the first sink (the run directory) is the one that must not fail."""

    def __init__(self, primary: JsonlSink, extra: list[Sink] | None = None):
        self.primary = primary
        self.extra = list(extra or [])
        self.sink_errors = 0

    def _fan_out(self, method: str, record: dict[str, Any]) -> None:
        getattr(self.primary, method)(record)
        for sink in self.extra:
            try:
                getattr(sink, method)(record)
            except Exception as exc:  # noqa: BLE001 - a copy failing must not stop training
                self.sink_errors += 1
                print(f"warning: telemetry sink {type(sink).__name__} failed: {exc}", file=sys.stderr)

    def metrics(self, step: int, stage: int, metrics: dict[str, float]) -> None:
        self._fan_out("metrics", {"step": step, "stage": stage, "wall_time": time.time(), "metrics": metrics})

    def event(self, kind: str, message: str, *, step: int, **data: Any) -> None:
        self._fan_out("event", {"kind": kind, "message": message, "step": step, "at": time.time(), "data": data})

    def close(self) -> None:
        for sink in [self.primary, *self.extra]:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001
                print(f"warning: closing {type(sink).__name__} failed: {exc}", file=sys.stderr)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics/events file; a torn last line (the process was killed mid-write) is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
