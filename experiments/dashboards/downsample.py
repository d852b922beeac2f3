"""Min/max bucket downsampling: what a chart receives instead of every point of a long series.

A series of ``count`` points over steps ``lo..hi`` is cut into at most ``budget / 2`` buckets of equal step
width, and each bucket sends its lowest and its highest point (plus the very first and very last point of the
range, so a line starts and ends where the data does). A line drawn through these has the same envelope as the
full series at the chart's resolution: spikes and dips survive, which plain decimation or averaging loses (an
entropy spike of one step is exactly what a researcher looks for). Each bucket also sends its mean and its
count, which the comparison dashboard smooths and averages across seeds: the min/max points are for drawing,
the means for arithmetic.

When the range spans no more steps than the budget, nothing is bucketed: the chart gets every point, so a
chart zoomed into a small enough range is exact. A bucketed series whose buckets each hold at most two points
(a sparse eval series) has lost nothing either, and says so (``exact``).

The aggregation itself runs in SQL on PostgreSQL (``series.py``); ``aggregate`` is the same arithmetic in
Python for SQLite and the reference the SQL is tested against. Both feed ``assemble``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Point = tuple[int, float]  # step, value


@dataclass(frozen=True)
class Buckets:
    """Equal-width step buckets over ``lo..hi``; ``width`` 1 means "no bucketing, send every point"."""

    lo: int
    hi: int
    width: int

    @property
    def raw(self) -> bool:
        return self.width == 1

    def index(self, step: int) -> int:
        return (step - self.lo) // self.width


def plan(lo: int, hi: int, budget: int) -> Buckets:
    """Buckets for a range so that a series in it yields at most about ``budget`` points."""
    if hi < lo:
        hi = lo
    span = hi - lo + 1
    if span <= budget:
        return Buckets(lo, hi, 1)
    return Buckets(lo, hi, math.ceil(span / max(1, budget // 2)))


@dataclass(frozen=True)
class Bucket:
    """One bucket's aggregates: the same columns the SQL query returns."""

    index: int
    count: int
    mean_step: float
    mean: float
    low: Point  # the lowest value (earliest step among equals)
    high: Point  # the highest value (latest step among equals)
    first: Point
    last: Point


@dataclass
class Downsampled:
    """A series ready to draw, with what the summary table needs."""

    steps: list[int]
    values: list[float]
    count: int
    exact: bool
    #: per bucket (index, mean step, mean value, count); None when the series is exact
    means: tuple[list[int], list[float], list[float], list[int]] | None
    final: Point | None
    maximum: Point | None
    minimum: Point | None


def aggregate(points: Iterable[Point], buckets: Buckets) -> list[Bucket]:
    """Bucket aggregates of ``points`` (sorted by step, finite values, inside the range)."""
    out: list[Bucket] = []
    current: list[Point] = []
    current_index = None
    for step, value in points:
        index = buckets.index(step)
        if index != current_index and current:
            out.append(_bucket(current_index, current))
            current = []
        current_index = index
        current.append((step, value))
    if current:
        out.append(_bucket(current_index, current))
    return out


def _bucket(index: int, points: list[Point]) -> Bucket:
    low = min(points, key=lambda p: (p[1], p[0]))
    high = max(points, key=lambda p: (p[1], p[0]))
    n = len(points)
    return Bucket(
        index=index,
        count=n,
        mean_step=sum(p[0] for p in points) / n,
        mean=math.fsum(p[1] for p in points) / n,
        low=low,
        high=high,
        first=points[0],
        last=points[-1],
    )


def assemble(buckets: Sequence[Bucket]) -> Downsampled:
    """The points to draw from bucket aggregates, in step order, each point once."""
    if not buckets:
        return Downsampled([], [], 0, True, None, None, None, None)
    steps: list[int] = []
    values: list[float] = []
    last_index = len(buckets) - 1
    for i, bucket in enumerate(buckets):
        chosen = {bucket.low[0]: bucket.low[1], bucket.high[0]: bucket.high[1]}
        if i == 0:
            chosen[bucket.first[0]] = bucket.first[1]
        if i == last_index:
            chosen[bucket.last[0]] = bucket.last[1]
        for step in sorted(chosen):
            steps.append(step)
            values.append(chosen[step])
    exact = all(b.count <= 2 for b in buckets)
    means = None
    if not exact:
        means = (
            [b.index for b in buckets],
            [round(b.mean_step, 1) for b in buckets],
            [b.mean for b in buckets],
            [b.count for b in buckets],
        )
    return Downsampled(
        steps=steps,
        values=values,
        count=sum(b.count for b in buckets),
        exact=exact,
        means=means,
        final=buckets[-1].last,
        maximum=max((b.high for b in buckets), key=lambda p: (p[1], p[0])),
        minimum=min((b.low for b in buckets), key=lambda p: (p[1], p[0])),
    )


def exact(points: Sequence[Point]) -> Downsampled:
    """Every point as it is (a range no wider than the budget)."""
    if not points:
        return Downsampled([], [], 0, True, None, None, None, None)
    return Downsampled(
        steps=[p[0] for p in points],
        values=[p[1] for p in points],
        count=len(points),
        exact=True,
        means=None,
        final=points[-1],
        maximum=max(points, key=lambda p: (p[1], p[0])),
        minimum=min(points, key=lambda p: (p[1], p[0])),
    )
