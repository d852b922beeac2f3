"""Sandboxed executions per second for a trivial program, next to what the bare interpreter allows.

    .venv/bin/python bench/sandbox.py [--runs 400] [--workers N] [--isolation auto]

Three rates, all with N programs in flight (N = the pool's default size, one per CPU), and the CPU time
one run costs (helpers plus everything they started, from /proc; the bare runs from os.times), which the
machine's load distorts much less than the rates:
- `sandbox`: `SandboxPool.run("print(1)")`, the whole path the code reward takes;
- `bare python`: `python -s -S -P -c "print(1)"` started with subprocess, no isolation at all: the floor
  set by interpreter start-up, which no sandbox that starts a fresh interpreter per run can beat;
- `bare fork+exec /bin/true`: the process-creation cost alone.
The gap between the first two is what the isolation costs. Other load on the machine skews the rates, so
compare them with each other rather than across runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from or1_train.rewards.sandbox import SandboxLimits, SandboxPool, default_workers  # noqa: E402


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds used by these processes and their reaped descendants (utime + stime + cutime + cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])
    return total / tick


def own_children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def rate(fn, runs: int, workers: int) -> float:
    with cf.ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda _: fn(), range(min(runs, 20))))  # warm up
        t = time.perf_counter()
        list(ex.map(lambda _: fn(), range(runs)))
        return runs / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--isolation", default="auto")
    args = ap.parse_args()

    limits = SandboxLimits(wall_s=30.0)
    with SandboxPool(args.workers, isolation=args.isolation) as pool:

        def sandboxed():
            res = pool.run("print(1)", limits=limits)
            assert res.stdout == "1\n", res

        cpu0 = tree_cpu_s(pool.helper_pids)
        sandbox_rate = rate(sandboxed, args.runs, args.workers)
        sandbox_cpu = (tree_cpu_s(pool.helper_pids) - cpu0) / (args.runs + min(args.runs, 20))
        level = pool.level
    python = os.path.realpath(sys.executable)

    def bare():
        subprocess.run([python, "-s", "-S", "-P", "-c", "print(1)"], stdout=subprocess.DEVNULL, check=True)

    cpu0 = own_children_cpu_s()
    bare_rate = rate(bare, args.runs, args.workers)
    bare_cpu = (own_children_cpu_s() - cpu0) / (args.runs + min(args.runs, 20))
    true_rate = rate(lambda: subprocess.run(["/bin/true"], check=True), args.runs, args.workers)
    load = os.getloadavg()[0]
    print(f"cpus {len(os.sched_getaffinity(0))}, workers {args.workers}, isolation {level}, load {load:.1f}")
    print(f"sandbox                   {sandbox_rate:7.1f} runs/s   {sandbox_cpu * 1e3:5.1f} ms CPU per run")
    print(f"bare python -s -S -P      {bare_rate:7.1f} runs/s   {bare_cpu * 1e3:5.1f} ms CPU per run")
    print(f"bare fork+exec /bin/true  {true_rate:7.1f} runs/s")


if __name__ == "__main__":
    main()
