"""Ingestion throughput: concurrent clients post metric batches to the real endpoint, backed by PostgreSQL.

    .venv/bin/python bench/ingest.py [--clients 4] [--workers 3] [--batch 5000] [--seconds 10]

What runs: a database of its own (``<name>_ingest_bench`` next to DATABASE_URL's, created and migrated here,
dropped at the end unless --keep), gunicorn with ``--workers`` sync workers on 127.0.0.1 serving OR1 Lab in
production mode, and ``--clients`` client processes, each with its own run and token, posting batches of
``--batch`` points (records of 50 metrics, as a trainer's steps look) for ``--seconds``. Bodies are encoded
before the clock starts, so the figure is the server's (and PostgreSQL's), not the clients' JSON encoding.
It prints points/s, requests/s and latency percentiles, and checks that the database holds exactly the
points that were acknowledged.

DATABASE_URL comes from the environment or var/services.env (``make services``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
METRICS_PER_STEP = 50


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    env_file = REPO / "var" / "services.env"
    if not url and env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("DATABASE_URL="):
                url = line.split("=", 1)[1].strip()
    if not url or not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/ingest.py needs DATABASE_URL=postgres://... (run `make services`)")
    return url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_runs(clients: int) -> list[tuple[int, str]]:
    """Migrate, then one run per client with its ingestion token (through the platform's own actions)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from experiments.actions import add_member, create_experiment_from_spec, create_run
    from experiments.models import Membership, Project, Team

    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    team = Team.objects.create(name="Bench", slug="bench")
    add_member(team, user, Membership.Role.OWNER)
    project = Project.objects.create(team=team, name="Bench", slug="bench")
    spec = {
        "name": "bench",
        "model": {"path": "var/models/bench"},
        "data": {"sources": [{"path": "var/data/bench.jsonl"}]},
        "stages": [
            {"steps": 1_000_000, "max_response_tokens": 64, "rollout_batch": 4, "mini_batch": 4, "group_size": 4}
        ],
    }
    experiment = create_experiment_from_spec(project=project, user=user, spec=spec)
    runs = []
    for _ in range(clients):
        run = create_run(experiment, user=user)
        runs.append((run.pk, run.issue_ingest_token()))
    return runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(batch: int, count: int) -> list[bytes]:
    """``count`` request bodies of ``batch`` points each, for consecutive steps of one run."""
    steps_per_batch = max(1, batch // METRICS_PER_STEP)
    names = [f"bench/metric_{i:02d}" for i in range(METRICS_PER_STEP)]
    out = []
    for b in range(count):
        records = []
        for s in range(steps_per_batch):
            step = b * steps_per_batch + s + 1
            metrics = {name: (step * 0.001 + i) for i, name in enumerate(names)}
            records.append({"step": step, "stage": 0, "wall_time": 1.7e9 + step, "metrics": metrics})
        out.append(json.dumps({"records": records}).encode())
    return out


def client(port: int, run_id: int, token: str, payloads: list[bytes], start_at: float, seconds: float, queue) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/api/ingest/runs/{run_id}/metrics"
    latencies, stored, errors = [], 0, 0
    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + seconds
    for body in payloads:
        if time.time() >= deadline:
            break
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        reply = response.read()
        conn.close()
        latencies.append(time.perf_counter() - t0)
        if response.status == 200:
            stored += json.loads(reply)["stored"]
        else:
            errors += 1
            print(f"client {run_id}: HTTP {response.status} {reply[:200]!r}", file=sys.stderr)
    queue.put((stored, latencies, errors, time.time()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes (one run each)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--batch", type=int, default=5000, help="points per request")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the clients post")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    base_url = database_url()
    name = f"{urlsplit(base_url).path.lstrip('/') or 'app'}_ingest_bench"
    bench_url = with_database(base_url, name)
    recreate_database(base_url, name)
    env = os.environ | {
        "DATABASE_URL": bench_url,
        "DJANGO_SETTINGS_MODULE": "or1platform.settings",
        "OR1_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "OR1_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    runs = prepare_runs(args.clients)

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "or1platform.wsgi",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
        ]
        + ["--log-level", "warning", "--timeout", "120"],
        cwd=REPO,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("gunicorn did not start")
                time.sleep(0.2)
        time.sleep(1.0)  # let every worker finish importing before the clock starts

        # Enough bodies for a generous rate (100k points/s per client); a client stops at the deadline.
        count = max(4, int(100_000 * args.seconds / args.batch))
        payloads = bodies(args.batch, count)
        queue = multiprocessing.Queue()
        start_at = time.time() + 1.0
        procs = [
            multiprocessing.Process(target=client, args=(port, run_id, token, payloads, start_at, args.seconds, queue))
            for run_id, token in runs
        ]
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(timeout=30)

    elapsed = max(r[3] for r in results) - start_at
    stored = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[1])
    errors = sum(r[2] for r in results)

    from experiments.models import MetricPoint

    in_database = MetricPoint.objects.count()
    print(
        f"clients {args.clients}, gunicorn workers {args.workers}, {args.batch} points/request, "
        f"{os.cpu_count()} CPUs, PostgreSQL {name}"
    )
    print(f"requests {len(latencies)} ({len(latencies) / elapsed:.1f}/s), errors {errors}, elapsed {elapsed:.1f}s")
    print(
        f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {latencies[int(0.95 * (len(latencies) - 1))] * 1000:.0f} ms"
    )
    print(f"points stored {stored}, in the database {in_database}")
    print(f"THROUGHPUT {stored / elapsed:,.0f} points/s")
    from django.db import connections

    connections.close_all()
    if not args.keep:
        drop_database(base_url, name)
    return 0 if errors == 0 and stored == in_database else 1


if __name__ == "__main__":
    sys.exit(main())
