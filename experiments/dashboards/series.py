"""Reading chart series from the metric table: downsampled ranges, live increments, the x-axis maps.

``read`` first finds each series' step range with two index probes per series, plans one set of buckets for
the whole request (so runs compared side by side share bucket boundaries and can be averaged bucket by
bucket), then either fetches every point (a range no wider than the budget, through the (run, name, step)
index) or builds the buckets. On PostgreSQL the buckets are built from the pre-aggregated tiles the database
keeps (``models.MetricTile``): every bucket is one tile of a level chosen for the range, so the read is one
index range scan returning a row per bucket. Aggregating the points themselves (a ``GROUP BY`` with min/max
over ``ARRAY[value, step]``) measured 1.1 s in the database alone for 20 runs of 10,000 steps on the project
machine; reading the tiles is a sixteenth of the rows and no aggregation. On other
databases (the embedded SQLite demo) the same arithmetic runs in Python over the points
(``downsample.aggregate``), on the same bucket boundaries.

Non-finite values (NaN, +-inf: a diverged loss) are left out of charts; the run page's tiles still show them.

Two pseudo-series make the x axes other than "step" possible without shipping a time stamp with every point:
``CLOCK`` is the wall time of each step (the ``wall_time`` of ``critic/score/mean``, logged at every step,
skipped ones included) and ``TOKENS`` is ``perf/total_tokens``. Both only grow with the step, so a page maps any
step to a time or a token count by interpolating them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import connection
from django.db.models import Q

from experiments.dashboards import tiles
from experiments.dashboards.downsample import Buckets, Downsampled, aggregate, assemble, exact, plan
from experiments.dashboards.tiles import LEVELS
from experiments.models import MetricPoint, MetricTile
from experiments.runstats import RATE_METRIC

CLOCK = "~clock"
TOKENS = "perf/total_tokens"

Key = tuple[int, str]  # run id, series name


def budget() -> int:
    return settings.OR1_CHART_MAX_POINTS


def _source(name: str) -> tuple[str, str]:
    """The stored metric and column behind a series name."""
    return (RATE_METRIC, "wall_time") if name == CLOCK else (name, "value")


@dataclass
class SeriesSet:
    """The answer to one ``read``: shared buckets and each (run, name) series that has points."""

    buckets: Buckets | None
    series: dict[Key, Downsampled]


def step_ranges(run_ids: Sequence[int], names: Sequence[str]) -> dict[Key, tuple[int, int]]:
    """(first step, last step) of each (run, series) that has points: two index probes per series."""
    keys = [(run_id, name) for run_id in run_ids for name in names]
    if not keys:
        return {}
    table = MetricPoint._meta.db_table
    values = ", ".join(["(%s, %s)"] * len(keys))
    sql = (
        f"SELECT k.column1, k.column2, "
        f"(SELECT min(step) FROM {table} WHERE run_id = k.column1 AND name = k.column2), "
        f"(SELECT max(step) FROM {table} WHERE run_id = k.column1 AND name = k.column2) "
        f"FROM (VALUES {values}) AS k"
    )
    params = [item for run_id, name in keys for item in (run_id, _source(name)[0])]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = {}
    for (run_id, name), (_, _, first, last) in zip(keys, rows):
        if first is not None:
            found[(run_id, name)] = (first, last)
    return found


def read(
    run_ids: Sequence[int],
    names: Sequence[str],
    *,
    lo: int | None = None,
    hi: int | None = None,
    max_points: int | None = None,
) -> SeriesSet:
    """Each (run, name) series over ``lo..hi`` (default: everything), at most about ``max_points`` points."""
    max_points = max_points or budget()
    ranges = step_ranges(run_ids, names)
    if not ranges:
        return SeriesSet(None, {})
    first = min(r[0] for r in ranges.values()) if lo is None else lo
    last = max(r[1] for r in ranges.values()) if hi is None else hi
    buckets = plan(first, last, max_points, LEVELS)
    keys = [key for key, (a, b) in ranges.items() if b >= buckets.lo and a <= buckets.hi]
    by_column: dict[str, list[Key]] = defaultdict(list)
    for key in keys:
        by_column[_source(key[1])[1]].append(key)
    out: dict[Key, Downsampled] = {}
    for column, column_keys in by_column.items():
        if buckets.raw:
            for key, points in _points(column_keys, column, buckets.lo, buckets.hi).items():
                out[key] = exact(points)
        elif connection.vendor == "postgresql":
            tiles.refresh((run_id, _source(name)[0]) for run_id, name in column_keys)
            out.update(_tile_series(column_keys, column, buckets))
        else:
            for key, points in _points(column_keys, column, buckets.lo, buckets.hi).items():
                out[key] = assemble(aggregate(points, buckets))
    return SeriesSet(buckets, {key: out[key] for key in keys if key in out and out[key].count})


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _rows(sql: str, params: Sequence) -> list[tuple]:
    """Rows of a query; on PostgreSQL through psycopg's own cursor with binary results.

    Django's psycopg cursor binds parameters on the client and returns text; parsing tens of thousands of
    rows of text was the slowest part of a 20-run chart request, binary results take a fraction of that.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def _points(keys: Sequence[Key], column: str, lo: int, hi: int) -> dict[Key, list[tuple[int, float]]]:
    """Every finite point of the series in ``lo..hi``, by step."""
    assert column in ("value", "wall_time")
    wanted = {(run_id, _source(name)[0]): name for run_id, name in keys}
    run_ids = sorted({k[0] for k in keys})
    names = sorted({n for _, n in wanted})
    table = MetricPoint._meta.db_table
    if connection.vendor == "postgresql":
        where, params = "run_id = ANY(%s) AND name = ANY(%s)", [run_ids, names]
    else:
        where = f"run_id IN ({', '.join(['%s'] * len(run_ids))}) AND name IN ({', '.join(['%s'] * len(names))})"
        params = [*run_ids, *names]
    sql = (
        f"SELECT run_id, name, step, {column} FROM {table} WHERE {where} AND step >= %s AND step <= %s "
        "ORDER BY run_id, name, step"
    )
    out: dict[Key, list[tuple[int, float]]] = defaultdict(list)
    for run_id, name, step, value in _rows(sql, [*params, lo, hi]):
        series = wanted.get((run_id, name))
        if series is not None and _finite(value):
            out[(run_id, series)].append((step, value))
    return out


def _tile_series(keys: Sequence[Key], column: str, buckets: Buckets) -> dict[Key, Downsampled]:
    """Series built from the tiles PostgreSQL keeps: each bucket is one tile, read in index order.

    For the clock (wall times) a bucket's lowest and highest point are its first and last: time only grows.
    """
    wanted = {(run_id, _source(name)[0]): name for run_id, name in keys}
    if column == "value":
        points = "min_s, min_v, max_s, max_v, first_s, first_v, last_s, last_v"
    else:
        points = "first_s, first_w, last_s, last_w, first_s, first_w, last_s, last_w"
    sql = (
        f"SELECT run_id, name, tile, n, sum_v, {points} FROM {MetricTile._meta.db_table} "
        "WHERE run_id = ANY(%s) AND name = ANY(%s) AND level = %s AND tile BETWEEN %s AND %s "
        "ORDER BY run_id, name, tile"
    )
    level = buckets.level
    first_tile = buckets.lo // level
    params = [sorted({k[0] for k in keys}), sorted({n for _, n in wanted}), level, first_tile, buckets.hi // level]
    rows = _rows(sql, params)
    out: dict[Key, Downsampled] = {}
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or rows[end][:2] != rows[start][:2]:
            series = wanted.get(tuple(rows[start][:2]))
            if series is not None:
                out[(rows[start][0], series)] = _from_tiles(rows[start:end], first_tile)
            start = end
    return out


def _from_tiles(rows: Sequence[tuple], first_tile: int) -> Downsampled:
    """``downsample.assemble`` for rows of one tile per bucket, in one pass (this is the 20-run hot loop).

    Rows are (run, name, tile, n, sum, low step, low value, high step, high value, first step, first value,
    last step, last value), by tile. The tests hold it to ``assemble``'s results.
    """
    steps: list[int] = []
    values: list[float] = []
    index: list[int] = []
    means: list[float] = []
    counts: list[int] = []
    exact = True
    minimum = maximum = None
    for _, _, tile, n, total, ls, lv, hs, hv, fs, fv, _, _ in rows:
        if lv is None or hv is None:
            continue  # a wall-time series logged without wall times
        if not steps and fs < min(ls, hs) and fv is not None:
            steps.append(fs)
            values.append(fv)
        pair = ((ls, lv), (hs, hv)) if ls <= hs else ((hs, hv), (ls, lv))
        for step, value in pair:
            if not steps or step > steps[-1]:
                steps.append(step)
                values.append(value)
        index.append(tile - first_tile)
        means.append(total / n)
        counts.append(n)
        exact = exact and n <= 2
        if minimum is None or lv < minimum[1] or (lv == minimum[1] and ls < minimum[0]):
            minimum = (ls, lv)
        if maximum is None or hv > maximum[1] or (hv == maximum[1] and hs > maximum[0]):
            maximum = (hs, hv)
    if not steps:
        return Downsampled([], [], 0, True, None, None, None, None)
    last_step, last_value = rows[-1][11], rows[-1][12]
    if last_step > steps[-1] and last_value is not None:
        steps.append(last_step)
        values.append(last_value)
    return Downsampled(
        steps=steps,
        values=values,
        count=sum(counts),
        exact=exact,
        means=None if exact else (index, means, counts),
        final=(steps[-1], values[-1]),
        maximum=maximum,
        minimum=minimum,
    )


@dataclass
class Increment:
    """New points of a run's series since the steps a page already has."""

    points: dict[str, list[tuple[int, float]]]
    #: the page must reload the series: a resumed run rewrote steps it has, or too much arrived to append
    reset: bool


def read_after(run_id: int, after: dict[str, int], *, limit: int | None = None) -> Increment:
    """Points of each series past the step the page has (``after[name]``; -1 for "none yet")."""
    limit = limit or budget()
    newest = step_ranges([run_id], list(after))
    for name, step in after.items():
        last = newest.get((run_id, name), (None, -1))[1]
        if step > last:  # the page holds steps the run no longer has: it was resumed from a checkpoint
            return Increment({}, True)
    pending = {name: step for name, step in after.items() if newest.get((run_id, name), (0, -1))[1] > step}
    if not pending:
        return Increment({}, False)
    by_column: dict[str, dict[str, int]] = defaultdict(dict)
    for name, step in pending.items():
        by_column[_source(name)[1]][name] = step
    points: dict[str, list[tuple[int, float]]] = {}
    total = 0
    for column, wanted in by_column.items():
        condition = Q()
        for step, names in _group_by_value(wanted).items():
            condition |= Q(name__in=[_source(n)[0] for n in names], step__gt=step)
        rows = (
            MetricPoint.objects.filter(condition, run_id=run_id)
            .order_by("name", "step")
            .values_list("name", "step", column)[: limit * len(wanted) + 1]
        )
        stored_to_series = defaultdict(list)
        for name in wanted:
            stored_to_series[_source(name)[0]].append(name)
        for stored, step, value in rows:
            total += 1
            for name in stored_to_series[stored]:
                if step > wanted[name] and _finite(value):
                    points.setdefault(name, []).append((step, value))
        if total > limit * len(wanted) or any(len(p) > limit for p in points.values()):
            return Increment({}, True)
    return Increment(points, False)


def _group_by_value(after: dict[str, int]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for name, step in after.items():
        groups[step].append(name)
    return groups


def metric_names(run_ids: Iterable[int], prefix: str = "") -> list[str]:
    """The distinct metric names of the runs (those starting with ``prefix``), by a skip scan of the index.

    ``SELECT DISTINCT name`` would read every point of every run; the recursive query jumps from one name to
    the next with one index probe each, so its cost is the number of names, not of points. (The prefix is
    applied afterwards: a range condition on it would depend on the database's collation.)
    """
    table = MetricPoint._meta.db_table
    sql = (
        "WITH RECURSIVE names(name) AS ("
        f"  SELECT (SELECT min(name) FROM {table} WHERE run_id = %s)"
        "  UNION ALL"
        f"  SELECT (SELECT min(name) FROM {table} WHERE run_id = %s AND name > names.name)"
        "  FROM names WHERE names.name IS NOT NULL"
        ") SELECT name FROM names WHERE name IS NOT NULL"
    )
    found: set[str] = set()
    with connection.cursor() as cursor:
        for run_id in run_ids:
            cursor.execute(sql, [run_id, run_id])
            found.update(name for (name,) in cursor.fetchall() if name.startswith(prefix))
    return sorted(found)
