"""Fixtures for the worker tests: a real Celery worker (with beat) on Redis, PostgreSQL, the real trainer.

``live_worker`` (one per module) starts ``celery -A or1platform worker -B`` as a subprocess on a queue of its
own, pointed at pytest-django's test database (``test_<name>``: the worker must see the rows the tests
commit, so tests that use it are ``transaction=True``) and at the live test server for ingestion, with beat
checking the runs every second. ``worker_spec`` builds a tiny spec (a random tiny Qwen2 built once per
session, the hf rollout engine, checkpoints every step) that trains in seconds.

Without PostgreSQL and Redis configured (``make services`` writes them to var/services.env, ``make test``
exports them) these tests skip, and fail in CI, where .ci/run starts both.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
GRACE_S = 20


def require_services() -> None:
    from django.conf import settings
    from django.db import connection

    if connection.vendor == "postgresql" and settings.CELERY_BROKER_URL.startswith("redis"):
        return
    message = "needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL): run `make services`, then `make test`"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def poll(predicate, timeout: float, what: str, interval: float = 0.25):
    """Call ``predicate`` until it returns something truthy (returned); fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout, what)``: poll until ``predicate()`` is truthy, else fail naming ``what``."""
    return poll


@pytest.fixture(scope="session")
def worker_inputs(tmp_path_factory) -> dict[str, Path]:
    """A random tiny Qwen2 (hidden 64, 2 layers, 2 heads) and a synthetic data file, built once."""
    from or1_train.data.synthetic import corpus_for_tokenizer, write_dataset
    from or1_train.model import ModelInitConfig, init_model

    root = tmp_path_factory.mktemp("worker_inputs")
    model = init_model(
        root / "model", ModelInitConfig(hidden_size=64, num_layers=2, num_heads=2), corpus_for_tokenizer(0, 2000)
    )
    data = write_dataset(root / "easy.jsonl", 64, (1, 2), 1)
    evalset = write_dataset(root / "eval.jsonl", 8, (1, 2), 5)
    return {"model": Path(model), "data": Path(data), "eval": Path(evalset)}


@pytest.fixture
def worker_spec(worker_inputs):
    """``worker_spec(steps=(3, 3), max_restarts=0, evaluate=False)``: a tiny spec dict on the shared inputs."""

    def make(steps=(3, 3), max_restarts: int = 0, evaluate: bool = False) -> dict:
        stage = {"max_prompt_tokens": 96, "rollout_batch": 4, "mini_batch": 4, "group_size": 4}
        spec = {
            "name": "tiny-worker",
            "seed": 0,
            "model": {"path": str(worker_inputs["model"]), "dtype": "float32"},
            "data": {"sources": [{"name": "easy", "path": str(worker_inputs["data"])}]},
            "stages": [
                {"name": "short", "steps": steps[0], "max_response_tokens": 8, **stage},
                {"name": "long", "steps": steps[1], "max_response_tokens": 12, **stage},
            ],
            "rollout": {"engine": "hf"},
            "reward": {"workers": 1},
            "evaluation": {"sets": [], "at_start": False, "every_steps": 0},
            "checkpoints": {"every_steps": 1, "keep_last": 2},
            "resources": {"launcher": "local", "max_restarts": max_restarts},
        }
        if evaluate:
            spec["evaluation"] |= {"sets": [{"name": "arith", "path": str(worker_inputs["eval"])}], "k": 2}
        return copy.deepcopy(spec)

    return make


@dataclass
class LiveWorker:
    """A Celery worker subprocess (with beat) on a queue of its own; ``start`` again after ``kill``."""

    queue: str
    runs_dir: Path
    grace_s: int
    log: Path
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.queue}@{socket.gethostname()}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def start(self) -> None:
        from or1platform.celery import app

        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, process_group=0
            )
        # A broadcast sent before the worker listens is lost, not queued: ask until it answers.
        process = self.process
        poll(
            lambda: process.poll() is not None or app.control.ping(destination=[self.name], timeout=0.5),
            90,
            "the Celery worker to answer a ping",
        )
        assert process.poll() is None, self.log_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool, as a crash or an OOM kill would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def _database_url(db: dict) -> str:
    user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if user else ""
    return f"postgres://{credentials}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def live_worker(django_db_setup, live_server, tmp_path_factory):
    require_services()
    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from workers.processes import kill_processes_of

    queue = f"test.{uuid.uuid4().hex[:10]}"
    root = tmp_path_factory.mktemp("live_worker")
    runs_dir = root / "runs"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "or1platform.settings",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "OR1_WORKER_QUEUE": queue,
        "OR1_WORKER_QUEUES": queue,
        "OR1_LOCAL_LAUNCH_QUEUE": queue,
        "OR1_DATA_DIR": str(root / "data"),
        "OR1_RUNS_DIR": str(runs_dir),
        "OR1_PUBLIC_URL": live_server.url,
        "OR1_CANCEL_GRACE_S": str(GRACE_S),
        "OR1_RECONCILE_INTERVAL_S": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "or1platform", "worker", "--beat", "--pool=prefork"]
    command += ["--concurrency=2", "--queues", queue, "--hostname", f"{queue}@%h", "--loglevel=INFO"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = LiveWorker(queue, runs_dir, GRACE_S, root / "worker.log", command, env)
    try:
        worker.start()
        with override_settings(
            OR1_WORKER_QUEUE=queue, OR1_LOCAL_LAUNCH_QUEUE=queue, OR1_RUNS_DIR=runs_dir, OR1_CANCEL_GRACE_S=GRACE_S
        ):
            yield worker
    finally:
        if worker.process is not None:
            worker.stop()
        kill_processes_of(str(runs_dir))  # trainers are detached from the worker: stop any a test left
