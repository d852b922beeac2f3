"""The trainer's HttpSink against the real ingestion endpoint (the live test server): delivery, order,
retries while the platform is down, bounded memory, and stopping when the token is refused."""

from __future__ import annotations

import math
import socket
import threading
import time

import pytest
from django.db import connection

from experiments.models import Checkpoint, MetricPoint, Run, RunStatus
from or1_train.ingest import HttpSink
from workers.lifecycle import ingest_url

pytestmark = pytest.mark.django_db(transaction=True)


def metric(step: int, **values) -> dict:
    return {"step": step, "stage": 0, "wall_time": time.time(), "metrics": values or {"a": float(step), "b": 1.0}}


def event(kind: str, step: int, **data) -> dict:
    return {"kind": kind, "message": f"{kind} {step}", "step": step, "at": time.time(), "data": data}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relayed_url(live_server, run: Run, port: int) -> str:
    """The run's ingestion URL through a relay on ``port`` in front of the live server."""
    return ingest_url(run).replace(live_server.url, f"http://127.0.0.1:{port}")


class Relay:
    """A TCP relay from ``port`` to the live server, started later: "the platform comes back"."""

    def __init__(self, port: int, target: tuple[str, int]):
        self.server = socket.create_server(("127.0.0.1", port))
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def started_run(run):
    run.transition_to(RunStatus.STARTING)
    return run


def test_the_sink_delivers_metrics_and_events_in_order(live_server, settings, started_run):
    settings.OR1_PUBLIC_URL = live_server.url
    run, token = started_run, started_run.issue_ingest_token()
    sink = HttpSink(ingest_url(run), token, batch_size=50, flush_interval_s=0.05)
    sink.event(event("stage_start", 0, stage=0))
    for step in range(1, 41):
        sink.metrics(metric(step, a=float(step), b=math.nan if step == 7 else 1.0, c=math.inf))
    manifest = {"step": 40, "stage": 0, "metrics": {}, "files": []}
    sink.event(
        event("checkpoint", 40, path="/runs/r/checkpoints/step-000040", stage=0, size_bytes=7, manifest=manifest)
    )
    sink.event(event("resume", 38))  # after its 40 steps: points 39 and 40 go, as the trainer truncates
    sink.close()

    assert not sink.fenced and sink.dropped_points == 0 and sink.sent_points == 120
    steps = sorted(set(MetricPoint.objects.filter(run=run).values_list("step", flat=True)))
    assert steps == list(range(1, 39))
    nan_point = MetricPoint.objects.filter(run=run, name="b", step=7).first()
    if connection.vendor == "postgresql":
        assert math.isnan(nan_point.value)
    assert MetricPoint.objects.get(run=run, name="c", step=3).value == math.inf
    assert Checkpoint.objects.get(run=run).step == 40
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.current_step == 38 and run.stages.get(index=0).started_at


def test_while_the_platform_is_down_memory_is_bounded_and_the_gap_is_reported(live_server, settings, started_run):
    settings.OR1_PUBLIC_URL = live_server.url
    run, token = started_run, started_run.issue_ingest_token()
    port = free_port()
    sink = HttpSink(
        relayed_url(live_server, run, port),
        token,
        batch_size=20,
        flush_interval_s=0.05,
        max_buffered_points=40,
        max_backoff_s=0.5,
    )
    for step in range(1, 101):  # 200 points while nothing listens: only the newest 40 can wait
        sink.metrics(metric(step))
    time.sleep(0.3)
    assert sink.dropped_points >= 160 and sink.sent_points == 0

    host, live_port = live_server.url.removeprefix("http://").split(":")
    relay = Relay(port, (host, int(live_port)))
    try:
        sink.close()
    finally:
        relay.close()
    assert sink.sent_points == 200 - sink.dropped_points > 0
    steps = set(MetricPoint.objects.filter(run=run).values_list("step", flat=True))
    assert steps and max(steps) == 100  # the newest points were kept, the oldest dropped
    warning = run.events.get(data__kind="warning")
    assert "fell behind and dropped" in warning.message and "metrics.jsonl" in warning.message


def test_close_gives_up_in_time_when_the_platform_never_answers():
    sink = HttpSink(f"http://127.0.0.1:{free_port()}/api/ingest/runs/1", "t", flush_interval_s=0.01, close_timeout_s=1)
    for step in range(1, 11):
        sink.metrics(metric(step))
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 3 and sink.sent_points == 0


def test_a_refused_token_stops_the_sink(live_server, settings, started_run):
    settings.OR1_PUBLIC_URL = live_server.url
    started_run.issue_ingest_token()
    sink = HttpSink(ingest_url(started_run), "a-token-of-an-earlier-launch", flush_interval_s=0.01)
    sink.metrics(metric(1))
    deadline = time.monotonic() + 10
    while not sink.fenced and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sink.fenced
    sink.metrics(metric(2))  # ignored from now on
    sink.close()
    assert not MetricPoint.objects.filter(run=started_run).exists()
