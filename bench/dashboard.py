"""Benchmark of the comparison dashboard's data endpoint on PostgreSQL.

Fills a database of its own with RUNS runs x METRICS metrics x STEPS steps (COPY, so 2 million points load in
seconds), then times ``/compare/data/`` for all the runs at once, one request per metric as the page makes
them, in process through Django's full request stack (middleware, session, auth), so the figure is the
server's time without the network. Also times the x-axis maps, a zoomed range, and the run page's load of
one run's every panel. The targets: under 300 ms per request and under 2 MB per payload.

    .venv/bin/python bench/dashboard.py [--runs 20 --metrics 10 --steps 10000 --repeat 5 --keep | --reuse]

The database (default ``postgres://app:app@127.0.0.1:5432/or1_bench_dashboard``) is dropped and created
again; ``--keep`` leaves it for a look afterwards, and ``--reuse`` times such a database again without the
two-minute fill. After the COPY, the tiles are merged as the periodic task would (``tiles.refresh_pending``)
and the table vacuumed as autovacuum would; both steps are timed and printed.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
METRICS = [
    "actor/entropy_loss",
    "actor/entropy",
    "actor/entropy_coeff",
    "critic/score/mean",
    "train/accuracy",
    "response_length/mean",
    "response_length/clip_ratio",
    "actor/pg_clipfrac",
    "actor/grad_norm",
    "perf/total_tokens",
]


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def value(metric: str, step: int, run_index: int, rng: random.Random) -> float:
    """A plausible curve per metric, with noise and the odd spike, so buckets have real extremes."""
    t = step / 1000.0
    if metric == "perf/total_tokens":
        return 3000.0 * step
    base = {
        "actor/entropy_loss": 0.2 + 0.3 * math.exp(-t) + 0.01 * (run_index % 4),
        "actor/entropy": 0.6 + 0.2 * math.exp(-t),
        "actor/entropy_coeff": min(0.005, 1e-4 * t),
        "critic/score/mean": 0.8 - 0.6 * math.exp(-t / 2),
        "train/accuracy": 0.75 - 0.6 * math.exp(-t / 2),
        "response_length/mean": 2000 + 400 * t,
        "response_length/clip_ratio": 0.02 + 0.01 * t,
        "actor/pg_clipfrac": 0.002,
        "actor/grad_norm": 0.3,
    }[metric]
    spike = 3.0 if rng.random() < 1e-4 else 1.0
    return base * spike * (1 + rng.gauss(0, 0.03))


def copy_points(run_ids: list[int], steps: int) -> int:
    from django.db import connection

    from experiments.models import MetricPoint

    table = MetricPoint._meta.db_table
    total = 0
    start = 1_750_000_000.0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        with raw.copy(f"COPY {table} (run_id, name, step, value, wall_time) FROM STDIN") as copy:
            for i, run_id in enumerate(run_ids):
                rng = random.Random(i)
                buffer = io.StringIO()
                for step in range(1, steps + 1):
                    wall = start + 40.0 * step + 3.0 * rng.random()
                    for metric in METRICS:
                        buffer.write(f"{run_id}\t{metric}\t{step}\t{value(metric, step, i, rng)!r}\t{wall!r}\n")
                copy.write(buffer.getvalue())
                total += steps * len(METRICS)
        cursor.execute(f"ANALYZE {table}")
    return total


def merge_tiles() -> None:
    """What the periodic task does between ingestion and the first look at a chart (dashboards/tiles.py)."""
    from django.db import connection

    from experiments.dashboards.tiles import refresh_pending
    from experiments.models import MetricTile

    t0 = time.perf_counter()
    merged = refresh_pending()
    with connection.cursor() as cursor:  # what autovacuum does soon after: index-only scans need it
        cursor.execute(f"VACUUM ANALYZE {MetricTile._meta.db_table}")
    tiles = MetricTile.objects.count()
    print(f"tiles: {merged} series merged into {tiles:,} tiles in {time.perf_counter() - t0:.1f} s")


def build(args) -> tuple[object, list[int]]:
    from django.core.management import call_command

    from experiments.actions import add_member, create_experiment_from_spec, create_run
    from experiments.models import Membership, Project, Team

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password="a-long-bench-password-1")
    team = Team.objects.create(name="Bench", slug="bench")
    add_member(team, user, Membership.Role.OWNER)
    project = Project.objects.create(team=team, name="Bench", slug="bench")
    spec = {
        "name": "bench",
        "model": {"path": "var/models/bench"},
        "data": {"sources": [{"path": "var/data/bench.jsonl"}]},
        "stages": [
            {
                "steps": args.steps // 2,
                "max_response_tokens": 8192,
                "rollout_batch": 64,
                "mini_batch": 64,
                "group_size": 16,
            },
            {
                "steps": args.steps - args.steps // 2,
                "max_response_tokens": 16384,
                "rollout_batch": 64,
                "mini_batch": 64,
                "group_size": 16,
            },
        ],
    }
    run_ids = []
    for target in (0.1, 0.2, 0.3, 0.4):
        experiment = create_experiment_from_spec(
            project=project, user=user, spec=dict(spec, name=f"bench-target-{target}", entropy={"target": target})
        )
        for seed in range(args.runs // 4 + (1 if len(run_ids) < args.runs % 4 else 0)):
            if len(run_ids) < args.runs:
                run_ids.append(create_run(experiment, user=user, spec=dict(experiment.spec, seed=seed)).pk)
    return user, run_ids


def timed(client, url: str, params: dict, repeat: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url, params)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.content[:200]
        size = len(response.content)
    return times, size


def report(label: str, times: list[float], size: int) -> tuple[float, float]:
    median, worst = statistics.median(times), max(times)
    print(f"  {label:<44} median {median:7.1f} ms   max {worst:7.1f} ms   payload {size / 1024:8.1f} KiB")
    return median, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-url", default="postgres://app:app@127.0.0.1:5432/or1_bench_dashboard")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=10, choices=range(1, len(METRICS) + 1))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument("--reuse", action="store_true", help="time a database an earlier --keep left, without filling")
    args = parser.parse_args()
    del METRICS[args.metrics :]

    if not args.reuse:
        recreate_database(args.db_url)
    os.environ["DATABASE_URL"] = args.db_url
    os.environ["OR1_DATA_DIR"] = tempfile.mkdtemp(prefix="or1-bench-dashboard-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "or1platform.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    try:
        if args.reuse:
            from django.contrib.auth import get_user_model

            from experiments.models import Run

            user = get_user_model().objects.get(username="bench")
            run_ids = list(Run.objects.order_by("pk").values_list("pk", flat=True))
        else:
            t0 = time.perf_counter()
            user, run_ids = build(args)
            points = copy_points(run_ids, args.steps)
            print(
                f"filled {points:,} points ({args.runs} runs x {len(METRICS)} metrics x {args.steps:,} steps) "
                f"in {time.perf_counter() - t0:.1f} s; chart budget {settings.OR1_CHART_MAX_POINTS} points/series"
            )
            merge_tiles()

        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        url = reverse("compare-data")
        runs = ",".join(map(str, run_ids))
        client.get(url, {"runs": runs, "metric": METRICS[0]})  # warm the connection and the caches
        worst_ms, worst_size, medians = 0.0, 0, []
        print(f"/compare/data/ for all {len(run_ids)} runs, one metric per request, {args.repeat} repeats each:")
        cases = [(f"metric={m}", {"runs": runs, "metric": m}) for m in METRICS]
        cases += [
            ("metric=actor/entropy_loss, with bucket means", {"runs": runs, "metric": METRICS[0], "means": "1"}),
            ("metric=actor/entropy_loss, x=tokens (+ maps)", {"runs": runs, "metric": METRICS[0], "x": "tokens"}),
            ("metric=actor/entropy_loss, x=time (+ maps)", {"runs": runs, "metric": METRICS[0], "x": "time"}),
            ("zoomed to steps 4000-5500 (every point)", {"runs": runs, "metric": METRICS[0], "lo": 4000, "hi": 5500}),
        ]
        for label, params in cases:
            times, size = timed(client, url, params, args.repeat)
            median, worst = report(label, times, size)
            medians.append(median)
            worst_ms, worst_size = max(worst_ms, worst), max(worst_size, size)
        print("run page, one run, every panel's series (one request):")
        times, size = timed(client, reverse("run-charts", args=[run_ids[0]]), {}, args.repeat)
        report(f"/runs/{run_ids[0]}/charts/", times, size)
        # The target is the server's time per request: every case's median must be under it. The slowest single
        # request is printed too; on a shared 2-core machine it mostly measures the neighbours.
        ok = max(medians) < 300 and worst_size < 2 * 1024 * 1024
        load = os.getloadavg()[0]
        print(
            f"comparison endpoint: median {statistics.median(medians):.1f} ms, slowest case's median "
            f"{max(medians):.1f} ms, slowest single request {worst_ms:.1f} ms, largest payload "
            f"{worst_size / 1024 / 1024:.2f} MiB (load average {load:.1f} on {os.cpu_count()} CPUs) -> "
            f"{'within' if ok else 'OVER'} the targets (300 ms, 2 MB)"
        )
        return 0 if ok else 1
    finally:
        from django.db import connections

        connections.close_all()
        if not (args.keep or args.reuse):
            drop_database(args.db_url)


if __name__ == "__main__":
    raise SystemExit(main())
