"""Health alerts: the rules that watch a running run, and the beat task that applies them.

Rules (thresholds in settings, ``OR1_ALERT_*``; "steps" are logged training steps, newest first):

    entropy_collapse    the controlled entropy signal (``entropy.signal``: ``actor/entropy_loss`` or
                        ``actor/entropy``) below FRACTION x ``entropy.target`` for the last STEPS steps.
                        The recipe exists to prevent this: a collapsed policy stops exploring and learning stalls.
    entropy_explosion   above MULTIPLE x target for the last STEPS steps (the fixed-coefficient failure of the
                        paper's ablations).
    coef_pinned         ``actor/entropy_coeff`` at ``entropy.max_coef`` for the last STEPS steps: the controller
                        pushes as hard as it may and entropy still sits below target.
    stalled             a running run with no new metric for the longer of MINUTES and STEP_MULTIPLE x its
                        median recent step time (so a slow 32B run is not flagged for being slow).
    truncation_rising   within the current stage, the mean ``response_length/clip_ratio`` of the last WINDOW
                        steps is at least MIN_RATIO and at least RISE above the WINDOW steps before: answers are
                        growing into the stage's limit, the recipe's cue for the next, longer stage.

Each rule says "holds", "does not hold" or "cannot tell yet". An alert is raised when its rule holds and
cleared when it has not held for half as many steps (hysteresis, so a signal hovering at a threshold does not
flap); a truncation alert also clears when a new stage begins, a stall alert when the run is no longer running.
Raising and clearing write a ``RunAlert`` row and a ``RunEvent`` of kind ``alert`` (``RunEvent.Kind.ALERT``; its
``data`` says which alert and whether it was raised or cleared).

``check_runs`` is a Celery task for beat (every ``OR1_ALERT_CHECK_INTERVAL_S``); ``check_run`` checks one run
and can be called anywhere (tests, a management shell, after an ingestion batch).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from experiments.dashboards.catalog import entropy_signal
from experiments.models import MetricPoint, Run, RunAlert, RunEvent, RunStatus
from experiments.runstats import RATE_METRIC, format_duration

Kind = RunAlert.Kind


@dataclass
class Verdict:
    kind: str
    holds: bool | None  # True: raise or keep; False: clear; None: cannot tell yet
    message: str = ""
    step: int | None = None
    data: dict = field(default_factory=dict)


def _recent(run: Run, name: str, n: int, *, after_step: int | None = None) -> list[tuple[int, float]]:
    """The newest ``n`` finite points of a metric, newest first."""
    rows = MetricPoint.objects.filter(run=run, name=name)
    if after_step is not None:
        rows = rows.filter(step__gt=after_step)
    points = rows.order_by("-step").values_list("step", "value")[: n + 8]
    return [(s, v) for s, v in points if v is not None and math.isfinite(v)][:n]


def _streak(points: list[tuple[int, float]], bad: Callable[[float], bool], steps: int) -> bool | None:
    """True when the newest ``steps`` points are all bad, False when the newest half are all good."""
    if len(points) >= steps and all(bad(v) for _, v in points[:steps]):
        return True
    clear = max(1, math.ceil(steps / 2))
    if len(points) >= clear and not any(bad(v) for _, v in points[:clear]):
        return False
    return None


def _entropy_rules(run: Run, spec: dict) -> list[Verdict]:
    entropy = spec.get("entropy", {})
    target = entropy.get("target")
    if not entropy.get("enabled", True) or not isinstance(target, int | float) or target <= 0:
        return []
    signal = entropy_signal(spec)
    s = settings
    need = max(s.OR1_ALERT_ENTROPY_COLLAPSE_STEPS, s.OR1_ALERT_ENTROPY_EXPLOSION_STEPS)
    points = _recent(run, signal, need)
    newest = points[0] if points else (None, None)
    low = s.OR1_ALERT_ENTROPY_COLLAPSE_FRACTION * target
    high = s.OR1_ALERT_ENTROPY_EXPLOSION_MULTIPLE * target
    data = {"metric": signal, "target": target, "value": newest[1]}
    verdicts = [
        Verdict(
            Kind.ENTROPY_COLLAPSE,
            _streak(points, lambda v: v < low, s.OR1_ALERT_ENTROPY_COLLAPSE_STEPS),
            f"Entropy is collapsing: {signal} has been below {s.OR1_ALERT_ENTROPY_COLLAPSE_FRACTION:g} x its "
            f"target {target:g} (= {low:.3g}) for {s.OR1_ALERT_ENTROPY_COLLAPSE_STEPS} steps; "
            f"{_at(newest)}.",
            newest[0],
            {**data, "threshold": low},
        ),
        Verdict(
            Kind.ENTROPY_EXPLOSION,
            _streak(points, lambda v: v > high, s.OR1_ALERT_ENTROPY_EXPLOSION_STEPS),
            f"Entropy is exploding: {signal} has been above {s.OR1_ALERT_ENTROPY_EXPLOSION_MULTIPLE:g} x its "
            f"target {target:g} (= {high:.3g}) for {s.OR1_ALERT_ENTROPY_EXPLOSION_STEPS} steps; "
            f"{_at(newest)}.",
            newest[0],
            {**data, "threshold": high},
        ),
    ]
    max_coef = entropy.get("max_coef")
    if isinstance(max_coef, int | float) and max_coef > 0:
        steps = s.OR1_ALERT_COEF_PINNED_STEPS
        coefs = _recent(run, "actor/entropy_coeff", steps)
        top = coefs[0] if coefs else (None, None)
        verdicts.append(
            Verdict(
                Kind.COEF_PINNED,
                _streak(coefs, lambda v: v >= max_coef * (1 - 1e-9), steps),
                f"The entropy coefficient has been at its maximum {max_coef:g} for {steps} steps: the controller "
                f"cannot push entropy up any harder (entropy.max_coef); {_at(top)}.",
                top[0],
                {"metric": "actor/entropy_coeff", "max_coef": max_coef, "value": top[1]},
            )
        )
    return verdicts


def _at(point: tuple[int | None, float | None]) -> str:
    step, value = point
    return "no points yet" if step is None else f"{value:.4g} at step {step}"


def _stall_rule(run: Run, now: datetime) -> Verdict:
    if run.status != RunStatus.RUNNING:
        return Verdict(Kind.STALLED, False, data={"reason": f"the run is {run.status}"})
    clock = list(
        MetricPoint.objects.filter(run=run, name=RATE_METRIC, wall_time__isnull=False)
        .order_by("-step")
        .values_list("step", "wall_time")[:21]
    )
    newest_eval = (
        MetricPoint.objects.filter(run=run, name="timing_s/eval", wall_time__isnull=False)
        .order_by("-step")
        .values_list("wall_time", flat=True)
        .first()
    )
    times = [w for _, w in clock] + ([newest_eval] if newest_eval else [])
    if times:
        last = datetime.fromtimestamp(max(times), UTC)
    elif run.started_at:
        last = run.started_at
    else:
        return Verdict(Kind.STALLED, None)
    gaps = [a[1] - b[1] for a, b in zip(clock, clock[1:]) if a[1] > b[1]]
    step_time = statistics.median(gaps) if gaps else 0.0
    threshold = max(settings.OR1_ALERT_STALL_MINUTES * 60.0, settings.OR1_ALERT_STALL_STEP_MULTIPLE * step_time)
    silent = (now - last).total_seconds()
    where = f"the last was step {clock[0][0]}" if clock else "none has arrived since the run started"
    return Verdict(
        Kind.STALLED,
        silent > threshold,
        f"No new metric for {format_duration(silent)} (the limit is {format_duration(threshold)}); {where}, at "
        f"{last:%Y-%m-%d %H:%M:%S} UTC.",
        clock[0][0] if clock else None,
        {"silent_s": round(silent, 1), "threshold_s": round(threshold, 1), "median_step_s": round(step_time, 3)},
    )


def _truncation_rule(run: Run, open_alert: RunAlert | None) -> Verdict:
    s = settings
    window = s.OR1_ALERT_TRUNCATION_WINDOW
    stage = run.stages.filter(index=run.current_stage).first()
    start = stage.start_step if stage else 0
    if open_alert is not None and open_alert.data.get("stage") != run.current_stage:
        return Verdict(Kind.TRUNCATION_RISING, False, data={"reason": "a new stage began"})
    points = _recent(run, "response_length/clip_ratio", 2 * window, after_step=start)
    if len(points) < 2 * window:
        return Verdict(Kind.TRUNCATION_RISING, None)
    recent = sum(v for _, v in points[:window]) / window
    before = sum(v for _, v in points[window:]) / window
    rise = recent - before
    limit = f" ({stage.max_response_tokens} tokens)" if stage else ""
    holds: bool | None = rise >= s.OR1_ALERT_TRUNCATION_RISE and recent >= s.OR1_ALERT_TRUNCATION_MIN_RATIO
    if not holds:
        holds = False if recent < s.OR1_ALERT_TRUNCATION_MIN_RATIO or rise < s.OR1_ALERT_TRUNCATION_RISE / 2 else None
    return Verdict(
        Kind.TRUNCATION_RISING,
        holds,
        f"Truncation is rising: {recent:.0%} of responses hit the stage's limit{limit} over the last {window} "
        f"steps, up from {before:.0%} over the {window} before (step {points[0][0]}).",
        points[0][0],
        {"stage": run.current_stage, "recent": recent, "before": before},
    )


def evaluate(run: Run, *, now: datetime | None = None, open_alerts: dict | None = None) -> list[Verdict]:
    """What every rule says about the run now."""
    now = now or timezone.now()
    open_alerts = open_alerts if open_alerts is not None else _open_by_kind(run)
    spec = run.spec_as_launched or {}
    return [
        *_entropy_rules(run, spec),
        _stall_rule(run, now),
        _truncation_rule(run, open_alerts.get(Kind.TRUNCATION_RISING)),
    ]


def _open_by_kind(run: Run) -> dict[str, RunAlert]:
    return {a.kind: a for a in RunAlert.objects.filter(run=run, cleared_at__isnull=True)}


def check_run(run: Run, *, now: datetime | None = None) -> list[str]:
    """Apply the rules to one run: raise, update or clear its alerts; returns what changed, in words."""
    now = now or timezone.now()
    open_alerts = _open_by_kind(run)
    changes = []
    for verdict in evaluate(run, now=now, open_alerts=open_alerts):
        alert = open_alerts.get(verdict.kind)
        if verdict.holds and alert is None:
            if _raise(run, verdict, now):
                changes.append(f"raised {verdict.kind}")
        elif verdict.holds and alert is not None:
            RunAlert.objects.filter(pk=alert.pk).update(message=verdict.message, step=verdict.step, data=verdict.data)
        elif verdict.holds is False and alert is not None:
            _clear(run, alert, verdict, now)
            changes.append(f"cleared {verdict.kind}")
    return changes


def _raise(run: Run, verdict: Verdict, now: datetime) -> bool:
    try:
        with transaction.atomic():
            RunAlert.objects.create(
                run=run, kind=verdict.kind, message=verdict.message, step=verdict.step, data=verdict.data, raised_at=now
            )
            run.events.create(
                kind=RunEvent.Kind.ALERT,
                message=verdict.message,
                at=now,
                data={"alert": verdict.kind, "state": "raised", "step": verdict.step, **verdict.data},
            )
    except IntegrityError:  # another checker raised it first
        return False
    return True


def _clear(run: Run, alert: RunAlert, verdict: Verdict, now: datetime) -> None:
    reason = verdict.data.get("reason") or "the rule no longer holds"
    with transaction.atomic():
        still_open = RunAlert.objects.filter(pk=alert.pk, cleared_at__isnull=True)
        if not still_open.update(cleared_at=now, cleared_reason=reason):
            return
        run.events.create(
            kind=RunEvent.Kind.ALERT,
            message=f"Cleared: {alert.get_kind_display()} ({reason}).",
            at=now,
            data={"alert": alert.kind, "state": "cleared", "reason": reason, "step": verdict.step},
        )


@shared_task(name="experiments.alerts.check_runs")
def check_runs() -> dict[int, list[str]]:
    """Check every running run, and clear the stall alerts of runs that are no longer running."""
    now = timezone.now()
    runs = Run.objects.filter(status=RunStatus.RUNNING) | Run.objects.filter(
        alerts__kind=Kind.STALLED, alerts__cleared_at__isnull=True
    )
    outcomes = {}
    for run in runs.distinct():
        changes = check_run(run, now=now)
        if changes:
            outcomes[run.pk] = changes
    return outcomes


def open_alerts_prefetch(lookup: str = "alerts") -> Prefetch:
    """Each run's open alerts as ``run.open_alerts`` (what the run-list badge reads), in one query for all rows;
    ``lookup`` reaches the runs' alerts from another model (``run__alerts`` from sweep points)."""
    return Prefetch(
        lookup,
        queryset=RunAlert.objects.filter(cleared_at__isnull=True).order_by("raised_at"),
        to_attr="open_alerts",
    )


def with_open_alerts(runs: QuerySet[Run]) -> QuerySet[Run]:
    """The runs with ``open_alerts_prefetch``: every view that lists runs with their badge uses this."""
    return runs.prefetch_related(open_alerts_prefetch())
