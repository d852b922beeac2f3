"""Server-side downsampling and the chart reads: bucket arithmetic, the SQL path against the Python reference,
exact zoomed ranges, live increments (and the reset after a resume), non-finite values, metric names."""

from __future__ import annotations

import math
import random

import pytest
from django.db import connection

from experiments.actions import create_run
from experiments.dashboards import series
from experiments.dashboards.downsample import aggregate, assemble, exact, plan
from experiments.ingestion import store_events, store_metrics
from experiments.models import MetricPoint
from experiments.models.metrics import Point


def noisy(n: int, seed: int, *, spike_at: int | None = None, dip_at: int | None = None) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    points = [(s, 1.0 + 0.1 * math.sin(s / 50) + rng.uniform(-0.05, 0.05)) for s in range(1, n + 1)]
    if spike_at:
        points[spike_at - 1] = (spike_at, 9.0)
    if dip_at:
        points[dip_at - 1] = (dip_at, -4.0)
    return points


def test_plan_sends_every_point_of_a_narrow_range_and_buckets_a_wide_one():
    assert plan(0, 1999, 2000).raw
    wide = plan(1, 10_000, 2000)
    assert not wide.raw and wide.width == 10
    assert wide.index(10_000) == 999  # 1,000 buckets of 10 steps: at most 2 points each


def test_min_max_buckets_keep_extremes_ends_and_the_budget():
    points = noisy(10_000, 0, spike_at=4321, dip_at=777)
    buckets = plan(1, 10_000, 2000)
    drawn = assemble(aggregate(points, buckets))
    assert len(drawn.steps) <= 2002
    assert drawn.steps == sorted(set(drawn.steps))
    assert (4321, 9.0) in zip(drawn.steps, drawn.values)
    assert (777, -4.0) in zip(drawn.steps, drawn.values)
    assert drawn.steps[0] == 1 and drawn.steps[-1] == 10_000  # the line starts and ends where the data does
    assert drawn.final == points[-1] and drawn.maximum == (4321, 9.0) and drawn.minimum == (777, -4.0)
    assert drawn.count == 10_000 and not drawn.exact
    index, mean, count = drawn.means
    assert len(index) == 1000 and sum(count) == 10_000
    assert mean[0] == pytest.approx(sum(v for _, v in points[:10]) / 10)  # steps 1..10 form the first bucket


def test_a_sparse_series_in_buckets_loses_nothing():
    evals = [(s, s / 1000) for s in range(0, 10_001, 20)]  # an eval every 20 steps over 10k steps
    drawn = assemble(aggregate(evals, plan(0, 10_000, 2000)))
    assert drawn.exact and drawn.means is None
    assert list(zip(drawn.steps, drawn.values)) == evals


def test_exact_series_summary():
    drawn = exact([(1, 0.5), (2, 0.2), (3, 0.7)])
    assert drawn.exact and drawn.final == (3, 0.7) and drawn.maximum == (3, 0.7) and drawn.minimum == (2, 0.2)


@pytest.fixture
def two_runs(run, experiment, alice):
    other = create_run(experiment, user=alice)
    a = noisy(3000, 1, spike_at=1500)
    b = noisy(3000, 2, dip_at=2999)
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(run=r, name="actor/entropy_loss", step=s, value=v)
            for r, pts in ((run, a), (other, b))
            for s, v in pts
        ],
        batch_size=3000,
    )
    return run, other, a, b


def test_read_downsamples_on_shared_buckets_and_matches_the_reference(two_runs):
    run, other, a, b = two_runs
    data = series.read([run.pk, other.pk], ["actor/entropy_loss"], max_points=200)
    # 3000 steps in at most 100 buckets: tiles of 16 steps make 188, of 32 steps 94 (from step 0)
    assert (data.buckets.lo, data.buckets.width, data.buckets.level) == (0, 32, 32)
    for run_id, points in ((run.pk, a), (other.pk, b)):
        got = data.series[(run_id, "actor/entropy_loss")]
        want = assemble(aggregate(points, data.buckets))  # on PostgreSQL, got comes from the SQL aggregation
        assert got.steps == want.steps
        assert got.values == pytest.approx(want.values, rel=1e-12)
        assert got.means[0] == want.means[0] and got.means[2] == want.means[2]
        assert got.means[1] == pytest.approx(want.means[1], rel=1e-9)
        assert len(got.steps) <= 202 and got.count == 3000 and len(got.means[0]) == 94
    spiky = data.series[(run.pk, "actor/entropy_loss")]
    assert (1500, 9.0) in zip(spiky.steps, spiky.values)
    print(f"\n{connection.vendor}: 2 x 3000 points -> {len(spiky.steps)} each")


def test_a_zoomed_range_comes_back_exact(two_runs):
    run, _, a, _ = two_runs
    data = series.read([run.pk], ["actor/entropy_loss"], lo=1400, hi=1600, max_points=500)
    got = data.series[(run.pk, "actor/entropy_loss")]
    assert got.exact and list(zip(got.steps, got.values)) == a[1399:1600]


def test_increments_and_the_reset_after_a_resume(run):
    store_metrics(
        run,
        {"records": [{"step": s, "stage": 0, "wall_time": 10.0 * s, "metrics": {"x": s / 10}} for s in range(1, 6)]},
    )
    assert series.read_after(run.pk, {"x": 3}).points == {"x": [(4, 0.4), (5, 0.5)]}
    assert series.read_after(run.pk, {"x": 5}).points == {}
    assert series.read_after(run.pk, {"x": -1, "absent": -1}).points == {"x": [(s, s / 10) for s in range(1, 6)]}
    clock = series.read_after(run.pk, {series.CLOCK: 4})
    assert clock.points == {}  # the clock follows critic/score/mean, which this run has not logged
    store_events(run, {"events": [{"kind": "resume", "message": "resumed", "step": 2, "at": 1.0, "data": {}}]})
    assert series.read_after(run.pk, {"x": 5}).reset  # the page holds steps 3..5 of the lost attempt
    assert series.read_after(run.pk, {"x": 0}, limit=1).reset  # too much to append: reload instead


def test_clock_and_tokens_maps(run):
    records = [
        {
            "step": s,
            "stage": 0,
            "wall_time": 1000.0 + 7 * s,
            "metrics": {"critic/score/mean": 0.1, series.TOKENS: 50.0 * s},
        }
        for s in range(1, 11)
    ]
    store_metrics(run, {"records": records})
    data = series.read([run.pk], [series.CLOCK, series.TOKENS])
    clock = data.series[(run.pk, series.CLOCK)]
    assert clock.steps == list(range(1, 11)) and clock.values == [1000.0 + 7 * s for s in range(1, 11)]
    assert data.series[(run.pk, series.TOKENS)].values[-1] == 500.0
    assert series.read_after(run.pk, {series.CLOCK: 8}).points == {series.CLOCK: [(9, 1063.0), (10, 1070.0)]}


def test_non_finite_points_are_left_out_of_charts(run):
    values = {1: 0.5, 2: "Infinity", 3: "NaN", 4: "-Infinity", 5: 0.25}
    store_metrics(
        run, {"records": [{"step": s, "stage": 0, "metrics": {"actor/ppo_kl": v}} for s, v in values.items()]}
    )
    got = series.read([run.pk], ["actor/ppo_kl"]).series[(run.pk, "actor/ppo_kl")]
    assert list(zip(got.steps, got.values)) == [(1, 0.5), (5, 0.25)]
    many = [{"step": s, "stage": 0, "metrics": {"y": "Infinity" if s % 7 == 0 else s * 1.0}} for s in range(1, 3001)]
    store_metrics(run, {"records": many})
    bucketed = series.read([run.pk], ["y"], max_points=100).series[(run.pk, "y")]
    assert all(math.isfinite(v) for v in bucketed.values) and bucketed.maximum == (3000, 3000.0)  # 2996 is inf


def test_metric_names_by_skip_scan(run, experiment, alice):
    other = create_run(experiment, user=alice)
    MetricPoint.upsert(run, [Point(n, s, 1.0) for n in ("b", "val/math/avg@8", "a") for s in range(50)])
    MetricPoint.upsert(other, [Point("c", 1, 1.0), Point("val/code/pass@4", 1, 1.0)])
    assert series.metric_names([run.pk, other.pk]) == ["a", "b", "c", "val/code/pass@4", "val/math/avg@8"]
    assert series.metric_names([run.pk], prefix="val/") == ["val/math/avg@8"]
    assert series.read([run.pk], ["missing"]).series == {}
