"""``manage.py demo`` launches the CPU demo run on the embedded defaults and it runs to the end; stopping the
demo stops a run in progress (checkpointed, cancelled) and leaves no trainer behind.

The embedded defaults are what ``make demo`` uses on a bare machine: SQLite, the filesystem broker, beat
reconciling every second here. The examples folder holds a ``cpu-demo`` spec of the tiny test size, so the
run takes seconds instead of the real demo's minutes; everything else is the real command.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workers.processes import processes_of

REPO = Path(__file__).resolve().parents[2]
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "OR1_ENV")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, tmp_path: Path, examples: Path):
        self.port = free_port()
        self.data = tmp_path / "data"
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
        env |= {
            "DJANGO_SETTINGS_MODULE": "or1platform.settings",
            "OR1_DATA_DIR": str(self.data),
            "OR1_EXAMPLES_DIR": str(examples),
            "OR1_RECONCILE_INTERVAL_S": "1",
            "OR1_CANCEL_GRACE_S": "20",
        }
        self.log = open(tmp_path / f"demo-{self.port}.log", "w+")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "manage.py", "demo", "--addr", f"127.0.0.1:{self.port}", "--stop-timeout", "15"]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, process_group=0
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            found = re.search(pattern, self.output())
            if found:
                return found
            time.sleep(0.2)
        pytest.fail(f"the demo never printed {pattern!r}:\n{self.output()[-5000:]}")

    def query(self, sql: str, *args):
        with sqlite3.connect(f"file:{self.data / 'or1lab.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, args).fetchone()

    def wait_for_run(self, run_id: int, condition, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.query(
                "SELECT status, current_step, status_reason, run_dir FROM experiments_run WHERE id = ?", run_id
            )
            if condition(*row):
                return row
            time.sleep(0.5)
        pytest.fail(f"run {run_id} is {row}:\n{self.output()[-5000:]}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=90)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.log.close()
        assert code == 0, self.output()[-5000:]
        return self.output()


def write_example(examples: Path, spec: dict) -> None:
    examples.mkdir(exist_ok=True)
    (examples / "cpu-demo.yaml").write_text(yaml.safe_dump(spec | {"name": "cpu-demo"}))


def test_the_demo_launches_the_cpu_demo_run_and_stops_a_run_in_progress(tmp_path, worker_spec):
    examples = tmp_path / "examples"
    write_example(examples, worker_spec(steps=(3, 3)))
    demo = Demo(tmp_path, examples)
    try:
        launched = demo.wait_for_output(r"launched the CPU demo run (\d+) \(6 steps\)", 120)
        demo.wait_for_output(rf"watch the demo run at http://127.0.0.1:{demo.port}/runs/\d+/", 30)
        run_id = int(launched.group(1))
        status, step, reason, run_dir = demo.wait_for_run(run_id, lambda s, *_: s in {"succeeded", "failed"}, 240)
        assert (status, step) == ("succeeded", 6), reason
        points = demo.query("SELECT COUNT(DISTINCT step) FROM experiments_metricpoint WHERE run_id = ?", run_id)
        assert points == (6,)
    finally:
        demo.stop()

    # Again, with a long run: stopping the demo checkpoints it, records it cancelled, and kills nothing late.
    write_example(examples, worker_spec(steps=(40, 40)))
    demo = Demo(tmp_path, examples)
    try:
        run_id = int(demo.wait_for_output(r"launched the CPU demo run (\d+) \(80 steps\)", 120).group(1))
        demo.wait_for_run(run_id, lambda s, step, *_: s == "running" and step >= 1, 180)
    finally:
        output = demo.stop()
    assert f"stopping run {run_id} (SIGTERM: checkpoint and stop)" in output and f"run {run_id}: cancelled" in output
    status, step, reason, run_dir = demo.query(
        "SELECT status, current_step, status_reason, run_dir FROM experiments_run WHERE id = ?", run_id
    )
    assert status == "cancelled" and "checkpointed and stopped on SIGTERM" in reason
    assert (Path(run_dir) / "checkpoints" / f"step-{step:06d}" / "manifest.json").exists()
    assert processes_of(run_dir) == []
