"""The metric tiles behind the charts (PostgreSQL): the trigger notes each changed series, a refresh brings
its tiles back to exactly the stored points after inserts, replays, late backfills, updates (upsert), a
resumed run's truncation and a run's deletion; non-finite values are never counted.

Every check compares the tile table with tiles computed in Python from the points that are stored."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from django.db import connection

from experiments.dashboards.tiles import LEVELS, refresh, refresh_pending
from experiments.ingestion import store_events, store_metrics
from experiments.models import MetricPoint, MetricTile, Run, TileState
from experiments.models.metrics import Point

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="tiles are kept by PostgreSQL triggers")


def expected_tiles(run: Run) -> dict[tuple, tuple]:
    groups = defaultdict(list)
    for name, step, value, wall in MetricPoint.objects.filter(run=run).values_list(
        "name", "step", "value", "wall_time"
    ):
        if math.isfinite(value):
            for level in LEVELS:
                groups[(name, level, step // level)].append((step, value, wall))
    out = {}
    for key, points in groups.items():
        points.sort()
        low = min(points, key=lambda p: (p[1], p[0]))
        high = max(points, key=lambda p: (p[1], p[0]))
        out[key] = (len(points), sum(p[0] for p in points), low[:2], high[:2], points[0], points[-1])
    return out


def stored_tiles(run: Run) -> dict[tuple, tuple]:
    return {
        (t.name, t.level, t.tile): (
            t.n,
            t.sum_s,
            (t.min_s, t.min_v),
            (t.max_s, t.max_v),
            (t.first_s, t.first_v, t.first_w),
            (t.last_s, t.last_v, t.last_w),
        )
        for t in MetricTile.objects.filter(run=run)
    }


def assert_exact(run: Run) -> None:
    assert not TileState.objects.filter(run=run, pending__isnull=False).exists()
    stored, expected = stored_tiles(run), expected_tiles(run)
    assert stored == expected
    sums = {(t.name, t.level, t.tile): t.sum_v for t in MetricTile.objects.filter(run=run)}
    for (name, level, tile), total in sums.items():
        values = MetricPoint.objects.filter(run=run, name=name, step__gte=tile * level, step__lt=(tile + 1) * level)
        assert total == pytest.approx(sum(v for v in values.values_list("value", flat=True) if math.isfinite(v)))


def batch(steps, value=lambda s: math.sin(s / 7)):
    return {
        "records": [
            {
                "step": s,
                "stage": 0,
                "wall_time": 1000.0 + s,
                "metrics": {"a": value(s), "b": "NaN" if s % 5 == 0 else s},
            }
            for s in steps
        ]
    }


def test_tiles_follow_inserts_replays_and_late_backfills(run):
    store_metrics(run, batch([s for s in range(0, 300) if not 100 <= s < 110]))
    assert not MetricTile.objects.filter(run=run).exists()  # ingestion only noted the change
    assert dict(TileState.objects.filter(run=run).values_list("name", "pending")) == {"a": 0, "b": 0}
    assert refresh() == 2
    assert_exact(run)
    assert MetricTile.objects.get(run=run, name="a", level=65536).n == 290
    assert MetricTile.objects.get(run=run, name="b", level=65536).n == 232  # NaN at every fifth step
    assert refresh() == 0
    store_metrics(run, batch(range(250, 400)))  # a retried batch overlapping the stored steps: new steps merged
    assert TileState.objects.get(run=run, name="a").pending == 300
    assert refresh([(run.pk, "a"), (run.pk, "b")]) == 2
    assert_exact(run)
    store_metrics(run, batch(range(100, 110)))  # the reconciler backfills steps the sink had lost: a rebuild
    refresh()
    assert_exact(run)
    assert MetricTile.objects.get(run=run, name="a", level=512).n == 400


def test_tiles_are_rebuilt_after_updates_and_truncation(run):
    store_metrics(run, batch(range(0, 200)))
    MetricPoint.upsert(run, [Point("a", 17, -50.0, 1.0), Point("a", 18, 50.0, 2.0), Point("c", 3, 1.0)])
    refresh()
    assert_exact(run)
    tile = MetricTile.objects.get(run=run, name="a", level=32, tile=0)
    assert (tile.min_s, tile.min_v, tile.max_s, tile.max_v) == (17, -50.0, 18, 50.0)
    MetricPoint.upsert(run, [Point("a", 17, 0.0, 1.0), Point("a", 18, 0.0, 2.0)])  # the extremes go away again
    refresh()
    assert_exact(run)
    store_events(run, {"events": [{"kind": "resume", "message": "resumed", "step": 90, "at": 5.0, "data": {}}]})
    refresh()
    assert_exact(run)
    assert MetricTile.objects.get(run=run, name="a", level=2048).last_s == 90


def test_tiles_go_with_their_run(run, experiment, alice):
    from experiments.actions import create_run

    other = create_run(experiment, user=alice)
    store_metrics(run, batch(range(0, 50)))
    store_metrics(other, batch(range(0, 50)))
    refresh()
    MetricPoint.objects.filter(run=run).delete()
    run.events.all().delete()
    run.stages.all().delete()
    Run.objects.filter(pk=run.pk).delete()
    assert refresh_pending() == 0  # the deleted run's states and tiles are cleaned up, nothing is left to merge
    assert not MetricTile.objects.filter(run_id=run.pk).exists()
    assert not TileState.objects.filter(run_id=run.pk).exists()
    assert_exact(other)
