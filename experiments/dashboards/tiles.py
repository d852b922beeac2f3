"""Metric tiles (models.MetricTile): their levels, and the refresh that keeps them equal to the points.

Levels: each is twice the one before, from 8 steps up to 65,536, so for any range one level cuts it into
between a half and all of a chart's buckets: a bucket is exactly one tile, and a chart reads one row per
bucket however long the run. All levels together hold about a quarter as many rows as the points.

Refresh: the trigger on the metric table (migration 0007) only records, per series, the smallest step that
changed (``TileState.pending``). ``refresh`` then, under one advisory lock so that two refreshers never merge
the same points twice:
    takes the series with pending changes (row-locked, so a concurrent ingestion waits for it or goes after it)
    rebuilds a series whose change lies at or below its mark (a replayed, updated or deleted point, or a
        backfill of old steps): its tiles are deleted and merged again from all its points
    merges the points above the mark of the others (the usual case: new steps of a live run)
    sets each mark to the series' newest step and clears pending
The merge aggregates the points into tiles of the smallest level once, then each level from the one below
(a chain of ``GROUP BY``s over ever fewer rows), and upserts them, adding counts and sums and keeping the
lowest, highest, first and last point. A chart refreshes the series it is about to read; the periodic task
``refresh_pending`` keeps everything else current so that charts rarely have anything to merge.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import shared_task
from django.db import connection, transaction

from experiments.models import MetricPoint, MetricTile, Run, TileState

LEVELS = tuple(8 * 2**k for k in range(14))  # 8, 16, 32, ..., 65536
LOCK = 0x0D1_7115  # the advisory lock key of the refresher ("or1 tiles")

COLUMNS = (
    "run_id, name, level, tile, n, sum_v, sum_s, min_v, min_s, max_v, max_s, first_s, first_v, first_w, "
    "last_s, last_v, last_w"
)


def aggregate_sql(source: str) -> str:
    """The tiles of every level for the points of ``source`` (a FROM item whose points are aliased ``p``)."""
    first = LEVELS[0]
    parts = [
        f"l0 AS (SELECT p.run_id, p.name, {first} AS level, p.step / {first} AS tile, count(*) AS n, "
        "sum(p.value) AS sv, sum(p.step)::float8 AS ss, min(ARRAY[p.value, p.step]) AS lo, "
        "max(ARRAY[p.value, p.step]) AS hi, min(ARRAY[p.step, p.value, p.wall_time]) AS f, "
        "max(ARRAY[p.step, p.value, p.wall_time]) AS l "
        f"FROM {source} WHERE p.value > '-Infinity'::float8 AND p.value < 'Infinity'::float8 "
        f"GROUP BY p.run_id, p.name, p.step / {first})"
    ]
    for i in range(1, len(LEVELS)):
        ratio = LEVELS[i] // LEVELS[i - 1]
        parts.append(
            f"l{i} AS (SELECT run_id, name, {LEVELS[i]} AS level, tile / {ratio} AS tile, sum(n) AS n, "
            "sum(sv) AS sv, sum(ss) AS ss, min(lo) AS lo, max(hi) AS hi, min(f) AS f, max(l) AS l "
            f"FROM l{i - 1} GROUP BY run_id, name, tile / {ratio})"
        )
    levels = " UNION ALL ".join(f"SELECT * FROM l{i}" for i in range(len(LEVELS)))
    return (
        "WITH " + ", ".join(parts) + " SELECT run_id, name, level, tile, n, sv, ss, lo[1], lo[2]::integer, hi[1], "
        f"hi[2]::integer, f[1]::integer, f[2], f[3], l[1]::integer, l[2], l[3] FROM ({levels}) AS a"
    )


MERGE = """
    ON CONFLICT (run_id, name, level, tile) DO UPDATE SET
        n = t.n + EXCLUDED.n,
        sum_v = t.sum_v + EXCLUDED.sum_v,
        sum_s = t.sum_s + EXCLUDED.sum_s,
        min_v = CASE WHEN (EXCLUDED.min_v, EXCLUDED.min_s) < (t.min_v, t.min_s) THEN EXCLUDED.min_v ELSE t.min_v END,
        min_s = CASE WHEN (EXCLUDED.min_v, EXCLUDED.min_s) < (t.min_v, t.min_s) THEN EXCLUDED.min_s ELSE t.min_s END,
        max_v = CASE WHEN (EXCLUDED.max_v, EXCLUDED.max_s) > (t.max_v, t.max_s) THEN EXCLUDED.max_v ELSE t.max_v END,
        max_s = CASE WHEN (EXCLUDED.max_v, EXCLUDED.max_s) > (t.max_v, t.max_s) THEN EXCLUDED.max_s ELSE t.max_s END,
        first_s = CASE WHEN EXCLUDED.first_s < t.first_s THEN EXCLUDED.first_s ELSE t.first_s END,
        first_v = CASE WHEN EXCLUDED.first_s < t.first_s THEN EXCLUDED.first_v ELSE t.first_v END,
        first_w = CASE WHEN EXCLUDED.first_s < t.first_s THEN EXCLUDED.first_w ELSE t.first_w END,
        last_s = CASE WHEN EXCLUDED.last_s > t.last_s THEN EXCLUDED.last_s ELSE t.last_s END,
        last_v = CASE WHEN EXCLUDED.last_s > t.last_s THEN EXCLUDED.last_v ELSE t.last_v END,
        last_w = CASE WHEN EXCLUDED.last_s > t.last_s THEN EXCLUDED.last_w ELSE t.last_w END
"""

Key = tuple[int, str]


def _keys_clause(keys: list[Key] | None) -> tuple[str, list]:
    if keys is None:
        return "", []
    return " AND (run_id, name) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))", [
        [k[0] for k in keys],
        [k[1] for k in keys],
    ]


def refresh(keys: Iterable[Key] | None = None) -> int:
    """Bring the tiles of ``keys`` (every series with pending changes when None) up to date with the points.

    Returns how many series were merged or rebuilt. Cheap when nothing is pending: one indexed query.
    """
    if connection.vendor != "postgresql":
        return 0
    keys = None if keys is None else sorted(set(keys))
    if keys == []:
        return 0
    state, tiles, points = TileState._meta.db_table, MetricTile._meta.db_table, MetricPoint._meta.db_table
    only, params = _keys_clause(keys)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {state} WHERE pending IS NOT NULL{only} LIMIT 1", params)
        if cursor.fetchone() is None:
            return 0
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
        cursor.execute(
            f"SELECT run_id, name, mark, pending FROM {state} WHERE pending IS NOT NULL{only} "
            "ORDER BY run_id, name FOR UPDATE",
            params,
        )
        todo = cursor.fetchall()
        if not todo:
            return 0
        runs, names = [r for r, _, _, _ in todo], [n for _, n, _, _ in todo]
        rebuild = [(r, n) for r, n, mark, pending in todo if pending <= mark]
        if rebuild:
            cursor.execute(
                f"DELETE FROM {tiles} WHERE (run_id, name) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))",
                [[r for r, _ in rebuild], [n for _, n in rebuild]],
            )
        starts = [-1 if (r, n) in set(rebuild) else mark for r, n, mark, _ in todo]
        cursor.execute(
            f"SELECT (SELECT max(step) FROM {points} WHERE run_id = k.run_id AND name = k.name) "
            "FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS k(run_id, name, i) ORDER BY k.i",
            [runs, names],
        )
        ends = [row[0] if row[0] is not None else -1 for row in cursor.fetchall()]
        source = (
            f"{points} AS p JOIN unnest(%s::bigint[], %s::text[], %s::integer[], %s::integer[]) "
            "AS k(run_id, name, lo, hi) ON p.run_id = k.run_id AND p.name = k.name AND p.step > k.lo AND p.step <= k.hi"
        )
        cursor.execute(
            f"INSERT INTO {tiles} AS t ({COLUMNS}) {aggregate_sql(source)} {MERGE}", [runs, names, starts, ends]
        )
        cursor.execute(
            f"UPDATE {state} AS s SET mark = k.hi, pending = NULL "
            "FROM unnest(%s::bigint[], %s::text[], %s::integer[]) AS k(run_id, name, hi) "
            "WHERE s.run_id = k.run_id AND s.name = k.name",
            [runs, names, ends],
        )
    return len(todo)


@shared_task(name="experiments.dashboards.tiles.refresh_pending")
def refresh_pending() -> int:
    """The periodic refresh (beat): every pending series, and no tiles or states left of deleted runs."""
    if connection.vendor != "postgresql":
        return 0
    gone = set(TileState.objects.values_list("run_id", flat=True).distinct()) - set(
        Run.objects.values_list("pk", flat=True)
    )
    if gone:
        for model in (MetricTile, TileState):
            model.objects.filter(run_id__in=gone).delete()
    return refresh()
