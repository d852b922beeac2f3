"""What a run's pages show beyond its row: the latest value of the key metrics and an ETA.

Every query reads the metric table through its (run, name, step) index, newest step first, a handful of rows
at a time, so a page that polls every few seconds stays cheap however long the run is.

The ETA is the rate of the recent steps (``RATE_WINDOW`` of them, from their logged wall times) applied to
the steps left. It is an estimate: a longer stage later in the schedule makes steps slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db.models import OuterRef, QuerySet, Subquery

from experiments.models import MetricPoint, Run

#: (metric name, label) shown on the run page, in this order
KEY_METRICS = (
    ("critic/score/mean", "Reward (mean score)"),
    ("train/accuracy", "Train accuracy"),
    ("actor/entropy_loss", "Entropy"),
    ("actor/entropy_coeff_realized", "Entropy coefficient applied"),
    ("response_length/clip_ratio", "Truncated responses"),
)
#: logged at every step, skipped steps included, so its points time the steps
RATE_METRIC = "critic/score/mean"
RATE_WINDOW = 20
REWARD, ENTROPY = "critic/score/mean", "actor/entropy_loss"


@dataclass(frozen=True)
class Latest:
    name: str
    label: str
    step: int
    value: float

    @property
    def text(self) -> str:
        return format_value(self.value)


def format_value(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4g}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def latest_metrics(run: Run) -> list[Latest]:
    """The newest point of each key metric the run has logged."""
    out = []
    for name, label in KEY_METRICS:
        point = MetricPoint.objects.filter(run=run, name=name).order_by("-step").values_list("step", "value").first()
        if point is not None:
            out.append(Latest(name, label, *point))
    return out


def latest_evals(run: Run) -> list[Latest]:
    """The newest ``val/<set>/avg@<k>`` of each evaluation set."""
    seen: dict[str, Latest] = {}
    rows = (
        MetricPoint.objects.filter(run=run, name__startswith="val/", name__contains="/avg@")
        .order_by("name", "-step")
        .values_list("name", "step", "value")
    )
    for name, step, value in rows:
        if name not in seen:
            seen[name] = Latest(name, name.removeprefix("val/"), step, value)
    return list(seen.values())


def eta_seconds(run: Run) -> float | None:
    """Seconds until the last step at the recent rate; None when finished or not yet measurable."""
    if run.is_terminal or not run.total_steps:
        return None
    points = list(
        MetricPoint.objects.filter(run=run, name=RATE_METRIC, wall_time__isnull=False)
        .order_by("-step")
        .values_list("step", "wall_time")[:RATE_WINDOW]
    )
    if len(points) < 2:
        return None
    (last_step, last_time), (first_step, first_time) = points[0], points[-1]
    if last_step <= first_step or last_time <= first_time:
        return None
    rate = (last_step - first_step) / (last_time - first_time)
    return max(0, run.total_steps - max(run.current_step, last_step)) / rate


def with_last_reward_and_entropy(runs: QuerySet[Run]) -> QuerySet[Run]:
    """Annotate ``last_reward`` and ``last_entropy`` (the newest point of each) for a list of runs."""

    def newest(name: str) -> Subquery:
        return Subquery(MetricPoint.objects.filter(run=OuterRef("pk"), name=name).order_by("-step").values("value")[:1])

    return runs.annotate(last_reward=newest(REWARD), last_entropy=newest(ENTROPY))
