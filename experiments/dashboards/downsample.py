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
    """Equal-width step buckets over ``lo..hi``; ``width`` 1 means "no bucketing, send every point".

    ``level`` > 1: the buckets are whole tiles of that many steps (``lo`` and ``hi + 1`` are multiples of it and
    ``width`` is), so PostgreSQL can build them from pre-aggregated tiles instead of points.
    """

    lo: int
    hi: int
    width: int
    level: int = 1

    @property
    def raw(self) -> bool:
        return self.width == 1

    def index(self, step: int) -> int:
        return (step - self.lo) // self.width


def plan(lo: int, hi: int, budget: int, levels: Sequence[int] = ()) -> Buckets:
    """Buckets for a range so that a series in it yields at most about ``budget`` points (two per bucket).

    With tile ``levels``, a bucket is one tile of the smallest level that keeps the buckets within the budget,
    and the range is widened to whole tiles: between a half and all of the buckets the budget allows (a
    quarter for ranges under four times the budget, which are one zoom from exact), in exchange for reading
    one pre-aggregated row per bucket. Planned the same way on every database, so charts do not depend on it.
    """
    if hi < lo:
        hi = lo
    span = hi - lo + 1
    if span <= budget:
        return Buckets(lo, hi, 1)
    count = max(1, budget // 2)
    if not levels:
        return Buckets(lo, hi, math.ceil(span / count))
    level = next((size for size in sorted(levels) if (hi // size - lo // size + 1) <= count), max(levels))
    return Buckets(lo // level * level, (hi // level + 1) * level - 1, level, level)


@dataclass(frozen=True)
class Bucket:
    """One bucket's aggregates: the same columns the SQL query returns."""

    index: int
    count: int
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
    #: per bucket (index, mean value, count); None when the series is exact. A page draws a bucket's mean at
    #: the middle of its steps (``lo + (index + 0.5) * width``), so the steps need not be sent.
    means: tuple[list[int], list[float], list[int]] | None
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
    first, last = buckets[0].first, buckets[-1].last
    if first[0] < min(buckets[0].low[0], buckets[0].high[0]):
        steps.append(first[0])
        values.append(first[1])
    exact = True
    for bucket in buckets:
        low, high = bucket.low, bucket.high
        pair = (low, high) if low[0] <= high[0] else (high, low)
        for step, value in pair:
            if not steps or step > steps[-1]:
                steps.append(step)
                values.append(value)
        exact = exact and bucket.count <= 2
    if last[0] > steps[-1]:
        steps.append(last[0])
        values.append(last[1])
    means = None
    if not exact:
        means = ([b.index for b in buckets], [b.mean for b in buckets], [b.count for b in buckets])
    return Downsampled(
        steps=steps,
        values=values,
        count=sum(b.count for b in buckets),
        exact=exact,
        means=means,
        final=last,
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
