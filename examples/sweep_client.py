"""Run a sweep from a script with nothing but httpx: create it, wait for it, print the best score per configuration.

    export OR1_TOKEN=or1_...      # a read-write token from the Tokens page (Account -> API tokens)
    python examples/sweep_client.py --experiment 1 \\
        --grid entropy.target=0.5,0.8,1.1 --grid "stages[0].max_response_tokens=48,64" --seeds 2 --concurrency 2

Each ``--grid PATH=V1,V2,...`` sweeps one spec field over a list (values are read as JSON when they parse:
numbers, true/false, else strings); ``--uniform PATH=LOW,HIGH`` draws ``--samples`` values from a range.
The platform expands the space, validates every point with the trainer's own spec rules, launches at most
``--concurrency`` runs at a time and reports invalid points instead of running them. The script waits until
the sweep is finished (Ctrl-C stops waiting; ``--cancel-on-exit`` cancels the sweep too), then prints, per
configuration, the best eval avg@k of each run averaged over its seeds, and the comparison dashboard's URL.

Only the public REST API is used (``/api/v1/``; its schema is at ``/api/schema/``, browsable at
``/api/docs/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx

DONE = {"finished", "cancelled"}


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(option: str) -> tuple[str, list]:
    path, sep, values = option.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise SystemExit(f"expected PATH=V1,V2,... but got {option!r}")
    return path.strip(), [parse_value(v.strip()) for v in values.split(",")]


def api_error(response: httpx.Response) -> str:
    """The platform's one error format, in a line per field: ``path: message``."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    lines = [f"HTTP {body.get('status', response.status_code)} {body.get('code', '')}: {body.get('detail', '')}"]
    lines += [f"  {e['path'] or '(request)'}: {e['message']}" for e in body.get("errors", [])]
    return "\n".join(lines)


def create(client: httpx.Client, args) -> dict:
    space: dict = {}
    if args.grid:
        space["grid"] = dict(parse_assignment(g) for g in args.grid)
    if args.uniform:
        space["random"] = {}
        for option in args.uniform:
            path, bounds = parse_assignment(option)
            if len(bounds) != 2:
                raise SystemExit(f"--uniform needs PATH=LOW,HIGH, got {option!r}")
            space["random"][path] = {"uniform": bounds}
    body = {
        "base_experiment": args.experiment,
        "name": args.name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
        "space": space,
        "seeds": args.seeds,
        "samples": args.samples,
        "concurrency": args.concurrency,
    }
    response = client.post("/api/v1/sweeps/", json=body)
    if response.status_code != 201:
        raise SystemExit("the sweep was refused:\n" + api_error(response))
    return response.json()


def wait(client: httpx.Client, sweep: dict, poll_s: float, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    last = None
    while sweep["status"] not in DONE:
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting after {timeout_s:.0f} s; the sweep goes on: {sweep['id']}")
        time.sleep(poll_s)
        response = client.get(f"/api/v1/sweeps/{sweep['id']}/")
        response.raise_for_status()
        sweep = response.json()
        runs = [p["run_status"] for p in sweep["points"] if p["run"]]
        line = (
            f"{sweep['status']}: {sum(s in ('succeeded', 'failed', 'cancelled') for s in runs)}/{len(runs)} runs "
            f"ended, {sweep['counts']['pending']} waiting for a slot"
        )
        if line != last:
            print(time.strftime("%H:%M:%S"), line, flush=True)
            last = line
    return sweep


def table(sweep: dict, results: list[dict]) -> str:
    paths = [*sweep["space"].get("grid", {}), *sweep["space"].get("random", {})]
    benchmarks = sorted({name for row in results for name in row["best"]})
    header = [*paths, "runs", *(f"best {b} avg@k" for b in benchmarks)]
    first = benchmarks[0] if benchmarks else None

    def score(row: dict) -> float:
        best = row["best"].get(first) if first else None
        return best["mean"] if best else float("-inf")

    rows = []
    for row in sorted(results, key=score, reverse=True):  # the best configuration first
        cells = [json.dumps(row["overrides"].get(p)) for p in paths]
        cells.append(f"{sum(s == 'launched' for s in row['states'])}/{len(row['states'])}")
        for name in benchmarks:
            best = row["best"].get(name)
            cells.append(f"{best['mean']:.3f} (max {best['max']:.3f}, n={best['runs']})" if best else "-")
        rows.append(cells)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) for cells in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("OR1_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("OR1_TOKEN"), help="default: $OR1_TOKEN")
    parser.add_argument("--experiment", type=int, required=True, help="id of the base experiment")
    parser.add_argument("--name")
    parser.add_argument("--grid", action="append", default=[], metavar="PATH=V1,V2")
    parser.add_argument("--uniform", action="append", default=[], metavar="PATH=LOW,HIGH")
    parser.add_argument("--samples", type=int, default=1, help="random draws (with --uniform)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between status checks")
    parser.add_argument("--timeout", type=float, default=24 * 3600.0, help="seconds to wait at most")
    parser.add_argument("--cancel-on-exit", action="store_true", help="cancel the sweep if the wait is cut short")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set OR1_TOKEN (create a read-write token on the Tokens page)")
    if not args.grid and not args.uniform:
        parser.error("sweep something: --grid PATH=V1,V2 or --uniform PATH=LOW,HIGH")

    headers = {"Authorization": f"Bearer {args.token}", "Accept": "application/json"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30.0) as client:
        sweep = create(client, args)
        counts = sweep["counts"]
        print(f"sweep {sweep['id']} ({sweep['name']}): {len(sweep['points'])} points, {counts['launched']} "
              f"launched, {counts['pending']} waiting, {counts['invalid']} invalid")
        for point in sweep["points"]:
            if point["state"] == "invalid":
                problems = "; ".join(f"{e['path']}: {e['message']}" for e in point["errors"])
                print(f"  not run: {json.dumps(point['overrides'])}: {problems}")
        try:
            sweep = wait(client, sweep, args.poll, args.timeout)
        except (KeyboardInterrupt, SystemExit):
            if args.cancel_on_exit:
                client.post(f"/api/v1/sweeps/{sweep['id']}/cancel/")
                print(f"cancelled sweep {sweep['id']}")
            raise
        response = client.get(f"/api/v1/sweeps/{sweep['id']}/results/")
        response.raise_for_status()
        print()
        print(table(sweep, response.json()))
        print(f"\n{sweep['status']}: {sweep['status_reason']}")
        print(f"compare: {args.url.rstrip('/')}{sweep['comparison_url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
