"""The metric tiles PostgreSQL keeps for the charts: exact after inserts, replays, updates (upsert), a resumed
run's truncation and a run's deletion, whoever writes the points; non-finite values never counted.

Every check compares the tile table with tiles computed in Python from the points that are stored."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from django.db import connection

from experiments.dashboards.tiles import LEVELS
from experiments.ingestion import store_events, store_metrics
from experiments.models import MetricPoint, MetricTile, Run
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


def test_tiles_follow_inserts_and_ignore_replays(run):
    store_metrics(run, batch(range(0, 300)))
    assert_exact(run)
    assert MetricTile.objects.get(run=run, name="a", level=32768).n == 300
    assert MetricTile.objects.get(run=run, name="b", level=32768).n == 240  # NaN at every fifth step
    store_metrics(run, batch(range(250, 400)))  # a retried batch overlapping the stored steps adds nothing twice
    assert_exact(run)
    assert MetricTile.objects.get(run=run, name="a", level=512).n == 400


def test_tiles_are_rebuilt_after_updates_and_truncation(run):
    store_metrics(run, batch(range(0, 200)))
    MetricPoint.upsert(run, [Point("a", 17, -50.0, 1.0), Point("a", 18, 50.0, 2.0), Point("c", 3, 1.0)])
    assert_exact(run)
    tile = MetricTile.objects.get(run=run, name="a", level=32, tile=0)
    assert (tile.min_s, tile.min_v, tile.max_s, tile.max_v) == (17, -50.0, 18, 50.0)
    MetricPoint.upsert(run, [Point("a", 17, 0.0, 1.0), Point("a", 18, 0.0, 2.0)])  # the extremes go away again
    assert_exact(run)
    store_events(run, {"events": [{"kind": "resume", "message": "resumed", "step": 90, "at": 5.0, "data": {}}]})
    assert_exact(run)
    assert MetricTile.objects.get(run=run, name="a", level=2048).last_s == 90


def test_tiles_go_with_their_run(run, experiment, alice):
    from experiments.actions import create_run

    other = create_run(experiment, user=alice)
    store_metrics(run, batch(range(0, 50)))
    store_metrics(other, batch(range(0, 50)))
    MetricPoint.objects.filter(run=run).delete()
    run.events.all().delete()
    run.stages.all().delete()
    Run.objects.filter(pk=run.pk).delete()
    assert not MetricTile.objects.filter(run_id=run.pk).exists()
    assert_exact(other)
