"""Benchmark of the REST API's run list and metric query with 10,000 runs in PostgreSQL.

Fills a database of its own with RUNS runs of the user's team (plus a fifth as many in another team, which
the list must leave out), each with a short reward and entropy series as a finished run has (the list shows
their latest values), and LONG runs with full 10,000-step series; rows go in with COPY. Then it times, in
process through Django's whole request stack with a personal API token (so the figure is the server's
time without the network):

    run list      GET /api/v1/runs/                       first page of 50, with the total count
    filtered      GET /api/v1/runs/?status=running&tag=t3 a filter and the default order
    deep page     GET /api/v1/runs/?page=150              a page far down the list
    metric query  GET /api/v1/metrics/?run=..&name=..     3 metrics x 10,000 steps, min/max-downsampled
    compare       GET /api/v1/metrics/?run=(5 runs)       one metric of 5 long runs
    zoomed        ... &step_min=4000&step_max=5000        exact points of a small range

The target: under 200 ms server time for each. Prints the median and the slowest of --repeat requests.

    .venv/bin/python bench/api.py [--runs 10000 --long 10 --repeat 20 --keep]

The database (default ``postgres://app:app@127.0.0.1:5432/or1_bench_api``, or BENCH_DATABASE_URL) is dropped
and created again; ``--keep`` leaves it for a look afterwards.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
SHORT_STEPS = 20
LONG_STEPS = 10_000
LONG_METRICS = ["actor/entropy_loss", "critic/score/mean", "response_length/clip_ratio"]
TARGET_MS = 200.0


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def recreate_database(url: str) -> None:
    import psycopg

    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copy(table: str, columns: str, rows) -> None:
    from django.db import connection

    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def fill(runs: int, long_runs: int) -> tuple[str, list[int]]:
    """The data; returns the API token of the team's owner and the ids of the long runs."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from experiments.actions import add_member, create_experiment_from_spec
    from experiments.models import ApiToken, Experiment, MetricPoint, Project, Run, RunStatus, Team
    from or1_train.spec import parse_spec

    call_command("migrate", interactive=False, verbosity=0)
    spec = {
        "name": "bench",
        "model": {"path": "var/models/tiny"},
        "data": {"sources": [{"path": "var/data/easy.jsonl"}]},
        "stages": [{"steps": 10, "max_response_tokens": 64, "rollout_batch": 4, "mini_batch": 4, "group_size": 4}],
    }
    frozen = parse_spec(spec).model_dump(mode="json")
    user_model = get_user_model()
    owner = user_model.objects.create_user("bench-owner")
    other = user_model.objects.create_user("bench-other")
    teams = []
    for slug, who, count in (("bench", owner, runs), ("elsewhere", other, runs // 5)):
        team = Team.objects.create(name=slug, slug=slug)
        add_member(team, who, "owner")
        experiments = []
        for p in range(4):
            project = Project.objects.create(team=team, name=f"p{p}", slug=f"p{p}")
            for e in range(5):
                experiments.append(
                    create_experiment_from_spec(
                        project=project, user=who, spec=dict(spec, name=f"{slug}-{p}-{e}"), tags=[f"t{e}"]
                    )
                )
        teams.append((team, who, experiments, count))
    statuses = [RunStatus.SUCCEEDED] * 6 + [RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.RUNNING, RunStatus.QUEUED]
    rng = random.Random(0)
    for _, who, experiments, count in teams:
        Run.objects.bulk_create(
            [
                Run(
                    experiment=experiments[i % len(experiments)],
                    created_by=who,
                    status=statuses[i % len(statuses)],
                    spec_as_launched=frozen,
                    total_steps=10,
                    current_step=10,
                )
                for i in range(count)
            ],
            batch_size=2000,
        )
    bench_runs = list(
        Run.objects.filter(experiment__in=teams[0][2]).order_by("pk").values_list("pk", flat=True)
    )
    table = MetricPoint._meta.db_table
    short = (
        (run_id, name, step, rng.random(), 1.7e9 + step)
        for run_id in Run.objects.values_list("pk", flat=True)
        for name in ("critic/score/mean", "actor/entropy_loss")
        for step in range(SHORT_STEPS)
    )
    _copy(table, "run_id, name, step, value, wall_time", short)
    long_ids = bench_runs[-long_runs:]
    MetricPoint.objects.filter(run_id__in=long_ids).delete()
    long = (
        (run_id, name, step, 0.3 + 0.1 * rng.random(), 1.7e9 + step)
        for run_id in long_ids
        for name in LONG_METRICS
        for step in range(LONG_STEPS)
    )
    _copy(table, "run_id, name, step, value, wall_time", long)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, secret = ApiToken.issue(owner, name="bench", scope="read")
    assert Experiment.objects.count() == 40
    return secret, long_ids


def measure(client, url: str, headers: dict, repeat: int) -> tuple[float, float, int, int]:
    """Median and slowest milliseconds of ``repeat`` requests (after two to warm up), status, bytes."""
    for _ in range(2):
        response = client.get(url, **headers)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, **headers)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), response.status_code, len(response.content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--long", type=int, default=10, help="runs with full 10,000-step series")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the database for a look afterwards")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://app:app@127.0.0.1:5432/or1_bench_api")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "or1platform.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    os.environ.setdefault("OR1_DATA_DIR", str(ROOT / "var" / "bench-api"))
    sys.path.insert(0, str(ROOT))
    recreate_database(url)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.test import Client

        settings.ALLOWED_HOSTS = ["testserver"]
        started = time.perf_counter()
        secret, long_ids = fill(args.runs, args.long)
        print(f"filled {args.runs} runs (+{args.runs // 5} of another team), {args.long} with "
              f"{len(LONG_METRICS)} x {LONG_STEPS} steps, in {time.perf_counter() - started:.1f} s")
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        one = long_ids[0]
        five = ",".join(map(str, long_ids[:5]))
        names = "&".join(f"name={n}" for n in LONG_METRICS)
        cases = [
            ("run list", "/api/v1/runs/"),
            ("filtered", "/api/v1/runs/?status=running&tag=t3"),
            ("deep page", "/api/v1/runs/?page=150"),
            ("metric query", f"/api/v1/metrics/?run={one}&{names}"),
            ("compare", f"/api/v1/metrics/?run={five}&name=actor/entropy_loss"),
            ("zoomed", f"/api/v1/metrics/?run={one}&{names}&step_min=4000&step_max=5000"),
        ]
        client = Client()
        worst = 0.0
        print(f"{'request':<14}{'median ms':>10}{'max ms':>9}{'status':>8}{'KB':>8}  url")
        for label, path in cases:
            median, slowest, status, size = measure(client, path, headers, args.repeat)
            worst = max(worst, median)
            print(f"{label:<14}{median:>10.1f}{slowest:>9.1f}{status:>8}{size / 1024:>8.1f}  {path}")
            if status != 200:
                print(f"  {label} answered {status}", file=sys.stderr)
                return 1
        verdict = "under" if worst < TARGET_MS else "OVER"
        print(f"slowest median {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
        return 0 if worst < TARGET_MS else 1
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
