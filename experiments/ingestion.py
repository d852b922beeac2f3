"""Storing what a trainer reports: metric points, events, checkpoints and evaluation results.

One code path for every way a run's records arrive: the HTTP ingestion API (``experiments/api/ingest.py``),
``manage.py import_run_dir`` and the reconciler's backfill from ``metrics.jsonl`` all call these functions
with the records exactly as the trainer writes them (``or1_train.telemetry``):

    metrics  {"step": int, "stage": int, "wall_time": float, "metrics": {name: value}}
    events   {"kind": str, "message": str, "step": int, "at": float, "data": {...}}

Rules
    Idempotent. A metric point is keyed by (run, name, step) and written with ``ON CONFLICT DO NOTHING``, so
    a retried or replayed batch adds nothing. An event is keyed by its time stamp and message (the trainer
    stamps each one), and only a new event has side effects (stage times, checkpoints, evaluations).
    Resume. The trainer's ``resume`` event (step N) means "steps after N are being trained again": like the
    trainer truncating ``metrics.jsonl``, the points after N are deleted, so the run's curves stay continuous
    with no stale point from the lost attempt.
    Non-finite values. JSON has no NaN or infinity; the trainer writes the strings "NaN", "Infinity" and
    "-Infinity" (bare NaN/Infinity tokens are accepted too). They are stored as IEEE NaN and +-inf, which
    PostgreSQL keeps. SQLite (the embedded demo) turns NaN into NULL, so there NaN points are skipped and
    counted in the reply; +-inf are stored.
    Checkpoints. The trainer reports a checkpoint as an event of kind ``checkpoint`` (data: path, model_dir,
    stage, size_bytes, manifest); storing that event registers the Checkpoint row. The manifest is kept on
    the Checkpoint, not copied into the event.
    Evaluations. An ``eval`` event (benchmark, k, num_samples, avg_at_k, pass_at_k, temperature) becomes an
    EvaluationResult, linked to the checkpoint of the same step when there is one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from experiments.models import (
    Checkpoint,
    EvaluationResult,
    InvalidTransition,
    MetricPoint,
    Run,
    RunEvent,
    RunStatus,
    StageRecord,
)
from or1_train.telemetry import EVENTS_FILE, METRICS_FILE, read_jsonl

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MAX_NAME = MetricPoint._meta.get_field("name").max_length
MAX_STEP = 2**31 - 1  # PositiveIntegerField is a 32-bit integer in PostgreSQL

#: The trainer's event kinds that have a RunEvent kind of their own; the rest are INFO. The trainer's own
#: kind is kept in ``data["kind"]``.
EVENT_KINDS = {
    "stage_start": RunEvent.Kind.STAGE,
    "stage_end": RunEvent.Kind.STAGE,
    "warning": RunEvent.Kind.WARNING,
    "error": RunEvent.Kind.ERROR,
}


class BatchError(ValueError):
    """A batch the platform will not store, with the field path of the first problem (HTTP 400)."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)


class BatchTooLarge(BatchError):
    """More points in one batch than the platform takes (HTTP 413)."""


@dataclass
class Stored:
    """What a call did: ``received`` points or events, ``stored`` new rows, ``skipped`` unstorable points."""

    received: int = 0
    stored: int = 0
    skipped: int = 0
    details: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored, "skipped": self.skipped, **self.details}


# ------------------------------------------------------------------------------------------ validation


def _int(value: Any, path: str, *, minimum: int = 0, maximum: int = MAX_STEP) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BatchError(path, "must be a whole number")
    if not minimum <= value <= maximum:
        raise BatchError(path, f"must be between {minimum} and {maximum}")
    return value


def metric_value(value: Any, path: str) -> float:
    """A point's value as a float; "NaN", "Infinity" and "-Infinity" are the trainer's non-finite values."""
    if isinstance(value, str):
        if value in NON_FINITE:
            return NON_FINITE[value]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise BatchError(path, "is too large for a float") from None
    raise BatchError(path, 'must be a number, or one of "NaN", "Infinity", "-Infinity"')


def _records(payload: Any, key: str) -> list:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
        raise BatchError(key, f'the body must be a JSON object with a list "{key}"')
    return payload[key]


Point = tuple[str, int, float, float | None]  # name, step, value, wall_time


def parse_metrics(payload: Any, *, max_points: int) -> tuple[list[Point], dict]:
    """Validate a metrics batch ``{"records": [...]}``; returns the points and the newest (step, stage).

    Raises BatchTooLarge past ``max_points`` points and BatchError naming the field of the first problem.
    """
    records = _records(payload, "records")
    points: list[Point] = []
    newest = {"step": -1, "stage": 0}
    for i, record in enumerate(records):
        where = f"records[{i}]"
        if not isinstance(record, dict):
            raise BatchError(where, "must be an object with step, stage, wall_time and metrics")
        step = _int(record.get("step"), f"{where}.step")
        stage = _int(record.get("stage", 0), f"{where}.stage", maximum=32767)
        wall_time = record.get("wall_time")
        if wall_time is not None:
            wall_time = metric_value(wall_time, f"{where}.wall_time")
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            raise BatchError(f"{where}.metrics", "must be an object of name: value")
        if len(points) + len(metrics) > max_points:
            raise BatchTooLarge("records", f"more than {max_points} points in one batch; send smaller ones")
        append = points.append
        for name, value in metrics.items():  # the hot loop: a plain float takes the shortest path
            if not 0 < len(name) <= MAX_NAME:
                raise BatchError(f"{where}.metrics", f"metric names must have 1 to {MAX_NAME} characters")
            number = value if type(value) is float else metric_value(value, f"{where}.metrics.{name}")
            append((name, step, number, wall_time))
        if step >= newest["step"]:
            newest = {"step": step, "stage": stage}
    return points, newest


@dataclass
class _Event:
    kind: str
    message: str
    step: int | None
    at: datetime
    data: dict


def parse_events(payload: Any, *, key: str = "events", only_kind: str | None = None) -> list[_Event]:
    records = _records(payload, key)
    events = []
    for i, record in enumerate(records):
        where = f"{key}[{i}]"
        if not isinstance(record, dict):
            raise BatchError(where, "must be an object with kind, message, step, at and data")
        kind = record.get("kind")
        if not isinstance(kind, str) or not 0 < len(kind) <= 50:
            raise BatchError(f"{where}.kind", "must be a name of 1 to 50 characters")
        if only_kind and kind != only_kind:
            raise BatchError(f"{where}.kind", f"must be {only_kind!r} here")
        message = record.get("message", "")
        if not isinstance(message, str):
            raise BatchError(f"{where}.message", "must be text")
        step = record.get("step")
        if step is not None:
            step = _int(step, f"{where}.step")
        at = record.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or at < 0:
            raise BatchError(f"{where}.at", "must be a time in seconds since the Unix epoch")
        data = record.get("data", {})
        if not isinstance(data, dict):
            raise BatchError(f"{where}.data", "must be an object")
        if kind == "checkpoint":
            _check_checkpoint(data, f"{where}.data", step)
        elif kind == "eval":
            _check_eval(data, f"{where}.data")
        elif kind in ("stage_start", "stage_end"):
            _int(data.get("stage"), f"{where}.data.stage", maximum=32767)
        elif kind == "resume" and step is None:
            raise BatchError(f"{where}.step", "a resume event needs the step it resumed from")
        events.append(_Event(kind, message, step, datetime.fromtimestamp(at, UTC), data))
    return events


def _check_checkpoint(data: dict, where: str, step: int | None) -> None:
    if step is None:
        raise BatchError(where.rsplit(".", 1)[0] + ".step", "a checkpoint needs its step")
    if not isinstance(data.get("path"), str) or not data["path"]:
        raise BatchError(f"{where}.path", "must be the checkpoint's directory")
    _int(data.get("stage"), f"{where}.stage", maximum=32767)
    _int(data.get("size_bytes", 0), f"{where}.size_bytes", maximum=2**63 - 1)
    if not isinstance(data.get("manifest", {}), dict):
        raise BatchError(f"{where}.manifest", "must be an object (the checkpoint's manifest.json)")


def _check_eval(data: dict, where: str) -> None:
    if not isinstance(data.get("benchmark"), str) or not data["benchmark"]:
        raise BatchError(f"{where}.benchmark", "must name the benchmark")
    _int(data.get("k"), f"{where}.k", minimum=1, maximum=32767)
    _int(data.get("num_samples"), f"{where}.num_samples")
    for name in ("avg_at_k", "temperature"):
        metric_value(data.get(name), f"{where}.{name}")
    if data.get("pass_at_k") is not None:
        metric_value(data["pass_at_k"], f"{where}.pass_at_k")


# ------------------------------------------------------------------------------------------- storing


def store_metrics(run: Run, payload: Any, *, max_points: int = 10**9, live: bool = True) -> Stored:
    """Validate and store a metrics batch; ``live`` batches also move the run's progress and status."""
    points, newest = parse_metrics(payload, max_points=max_points)
    result = Stored(received=len(points))
    if connection.vendor != "postgresql":
        finite = [p for p in points if not math.isnan(p[2])]
        result.skipped = len(points) - len(finite)
        points = finite
    result.stored = _insert_points(run.pk, points)
    if live and newest["step"] >= 0:
        note_progress(run, newest["step"], newest["stage"])
    return result


def _insert_points(run_id: int, points: Sequence[Point]) -> int:
    """Insert points that are not stored yet; returns how many were new. One statement on PostgreSQL."""
    if not points:
        return 0
    if connection.vendor == "postgresql":
        names, steps, values, walls = (list(column) for column in zip(*points, strict=True))
        table = MetricPoint._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (run_id, name, step, value, wall_time) "
                "SELECT %s, * FROM unnest(%s::text[], %s::integer[], %s::float8[], %s::float8[]) "
                "ON CONFLICT (run_id, name, step) DO NOTHING",
                [run_id, names, steps, values, walls],
            )
            return cursor.rowcount
    before = MetricPoint.objects.filter(run_id=run_id).count()
    MetricPoint.objects.bulk_create(
        [MetricPoint(run_id=run_id, name=n, step=s, value=v, wall_time=w) for n, s, v, w in points],
        batch_size=500,
        ignore_conflicts=True,
    )
    return MetricPoint.objects.filter(run_id=run_id).count() - before


def note_progress(run: Run, step: int, stage: int) -> None:
    """Mark the run running, then advance its step (never backwards, also under concurrent batches)."""
    if run.status == RunStatus.STARTING:
        try:
            run.transition_to(RunStatus.RUNNING, reason="the trainer reported its first metrics")
        except InvalidTransition:
            pass  # another batch, or the reconciler, moved it first
    Run.objects.filter(pk=run.pk, current_step__lt=step).update(current_step=step, current_stage=stage)


def store_events(run: Run, payload: Any, *, key: str = "events", only_kind: str | None = None) -> Stored:
    """Validate and store an events batch; only events not stored before have side effects."""
    events = parse_events(payload, key=key, only_kind=only_kind)
    result = Stored(received=len(events))
    if not events:
        return result
    with transaction.atomic():
        # The HTTP sink and the reconciler's backfill can deliver the same events at once; holding the run's
        # row serialises them, so the check below sees what the other one stored.
        Run.objects.select_for_update().only("pk").get(pk=run.pk)
        seen = set(
            RunEvent.objects.filter(
                run=run, at__gte=min(e.at for e in events), at__lte=max(e.at for e in events)
            ).values_list("at", "message")
        )
        new = []
        for event in events:
            if (event.at, event.message) not in seen:
                seen.add((event.at, event.message))
                new.append(event)
        rows = []
        for event in new:
            rows.append(_event_row(run, event))
            _apply(run, event)
        RunEvent.objects.bulk_create(rows)
    result.stored = len(rows)
    return result


def _event_row(run: Run, event: _Event) -> RunEvent:
    data = {key: value for key, value in event.data.items() if key != "manifest"}
    return RunEvent(
        run=run,
        kind=EVENT_KINDS.get(event.kind, RunEvent.Kind.INFO),
        message=event.message,
        at=event.at,
        data={"source": "trainer", "kind": event.kind, "step": event.step, **data},
    )


def _apply(run: Run, event: _Event) -> None:
    data = event.data
    if event.kind == "stage_start":
        StageRecord.objects.filter(run=run, index=data["stage"], started_at__isnull=True).update(started_at=event.at)
        StageRecord.objects.filter(run=run, index__lt=data["stage"], ended_at__isnull=True).update(ended_at=event.at)
        Run.objects.filter(pk=run.pk).update(current_stage=data["stage"])
    elif event.kind == "stage_end":
        StageRecord.objects.filter(run=run, index=data["stage"], ended_at__isnull=True).update(ended_at=event.at)
    elif event.kind == "resume":
        MetricPoint.objects.filter(run=run, step__gt=event.step).delete()
        Run.objects.filter(pk=run.pk).update(current_step=event.step)
    elif event.kind == "checkpoint":
        manifest = data.get("manifest", {})
        metrics = manifest.get("metrics", {}) if isinstance(manifest.get("metrics"), dict) else {}
        Checkpoint.objects.update_or_create(
            run=run,
            step=event.step,
            defaults={
                "stage": data["stage"],
                "path": data["path"],
                "manifest": manifest,
                "metrics": metrics,
                "size_bytes": data.get("size_bytes", 0),
            },
        )
    elif event.kind == "eval":
        EvaluationResult.objects.get_or_create(
            run=run,
            benchmark=data["benchmark"],
            step=event.step,
            k=data["k"],
            defaults={
                "checkpoint": Checkpoint.objects.filter(run=run, step=event.step).first(),
                "num_samples": data["num_samples"],
                "avg_at_k": metric_value(data["avg_at_k"], "avg_at_k"),
                "pass_at_k": None if data.get("pass_at_k") is None else metric_value(data["pass_at_k"], ""),
                "temperature": metric_value(data["temperature"], "temperature"),
            },
        )


# ----------------------------------------------------------------------------------------- run dirs


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_run_dir(run: Run, run_dir: Path | str, *, live: bool = False, chunk: int = 500) -> dict[str, Any]:
    """Backfill ``run`` from its directory's ``events.jsonl`` and ``metrics.jsonl``; safe to repeat.

    Events go first, so a ``resume`` event's truncation happens before the file's metrics (already truncated
    by the trainer) are inserted. A record the endpoint would refuse is skipped and counted, so one bad line
    never blocks the rest of a backfill.
    """
    run_dir = Path(run_dir)
    summary: dict[str, Any] = {"events": Stored(), "metrics": Stored(), "refused": []}
    for name, store, key in (
        (EVENTS_FILE, lambda batch: store_events(run, {"events": batch}), "events"),
        (METRICS_FILE, lambda batch: store_metrics(run, {"records": batch}, live=live), "metrics"),
    ):
        total: Stored = summary[key]
        for batch in _chunks(read_jsonl(run_dir / name), chunk):
            for part in _storable(batch, store, summary["refused"], name):
                total.received += part.received
                total.stored += part.stored
                total.skipped += part.skipped
    newest = MetricPoint.objects.filter(run=run).order_by("-step").values_list("step", flat=True).first()
    if newest is not None:
        Run.objects.filter(pk=run.pk, current_step__lt=newest).update(current_step=newest)
    return {
        "events": summary["events"].as_dict(),
        "metrics": summary["metrics"].as_dict(),
        "refused": summary["refused"],
    }


def _storable(batch: list, store, refused: list, name: str) -> Iterable[Stored]:
    """Store the batch; when a record in it is refused, store the others one by one and note the refusal."""
    try:
        yield store(batch)
        return
    except BatchError:
        pass
    for record in batch:
        try:
            yield store([record])
        except BatchError as exc:
            refused.append(f"{name}: {exc}")


def last_logged_step(run_dir: Path | str, tail_bytes: int = 65536) -> int | None:
    """The step of the last complete record in a run directory's ``metrics.jsonl`` (None when there is none).

    Steps only grow within the file (a resumed trainer truncates it first), so the last line is the newest,
    and reading the file's tail keeps this cheap for the reconciler however long the run is.
    """
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line, or the cut-off first line of the tail
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            return record["step"]
    return None
