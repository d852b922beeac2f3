"""The platform's ingestion sink: the trainer's metrics and events, posted in batches over HTTP.

``or1_train.cli`` adds an :class:`HttpSink` when the launcher sets ``OR1_INGEST_URL`` (the run's base URL,
``<platform>/api/ingest/runs/<id>``) and ``OR1_INGEST_TOKEN`` (the run's token). It is a copy: the run
directory's ``metrics.jsonl`` and ``events.jsonl`` stay the source of truth, and the platform backfills from
them whatever this sink could not deliver (its reconciler compares steps; ``manage.py import_run_dir``).

Behaviour
    Batching: records are queued in memory and a background thread posts them once ``batch_size`` points
    are waiting or the oldest has waited ``flush_interval_s``; the training loop never waits for the network.
    Order: records are sent in the order the trainer emitted them (a ``resume`` event reaches the platform
    before the metrics that follow it); consecutive records for one endpoint share a request. Checkpoint
    events go to ``/checkpoints``, other events to ``/events``, metrics to ``/metrics``.
    Failures: connection errors, timeouts, 429 and 5xx are retried with exponential backoff (with jitter, up
    to ``max_backoff_s``). A 400 or 413 (the platform refuses that batch) drops the batch and says why on
    stderr. A 401/403/404 means this launch may no longer write the run (it was relaunched or deleted): the
    sink stops sending.
    Bounded memory: at most ``max_buffered_points`` wait; past that the oldest metric records are dropped
    from memory (never from ``metrics.jsonl``), and once the platform answers again a ``warning`` event says
    how many steps were dropped, so the gap is explained until the platform backfills it.
    Close: ``close()`` sends what is left for up to ``close_timeout_s``, then gives up (the files have it).

Only the standard library is used (``urllib``), so the trainer gains no dependency.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any

from or1_train.telemetry import _json_value

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
FENCED_STATUSES = frozenset({401, 403, 404})
MAX_EVENTS_PER_REQUEST = 500


@dataclass
class _Item:
    endpoint: str  # "metrics", "events" or "checkpoints"
    record: dict[str, Any]
    points: int
    queued_at: float


class HttpSink:
    """A telemetry sink (``metrics``/``event``/``close``) that posts to the platform's ingestion API."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch_size: int = 2000,
        flush_interval_s: float = 1.0,
        max_buffered_points: int = 200_000,
        timeout_s: float = 10.0,
        close_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
    ):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffered_points = max_buffered_points
        self.timeout_s = timeout_s
        self.close_timeout_s = close_timeout_s
        self.max_backoff_s = max_backoff_s

        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._buffered = 0  # points queued or in flight
        self._closing = False
        self._close_deadline = 0.0
        self.fenced = False
        #: counters, for the run's log and for tests
        self.sent_points = 0
        self.dropped_points = 0
        self.refused_batches = 0
        self._unreported_drops: list[int] = []  # steps of dropped metric records not yet reported
        self._thread = threading.Thread(target=self._loop, name="or1-ingest", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the Sink interface

    def metrics(self, record: dict[str, Any]) -> None:
        clean = dict(record, metrics={k: _json_value(v) for k, v in record["metrics"].items()})
        self._put(_Item("metrics", clean, max(1, len(clean["metrics"])), time.monotonic()))

    def event(self, record: dict[str, Any]) -> None:
        endpoint = "checkpoints" if record.get("kind") == "checkpoint" else "events"
        self._put(_Item(endpoint, record, 1, time.monotonic()))

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + self.close_timeout_s
            self._cond.notify_all()
        self._thread.join(self.close_timeout_s)
        with self._cond:
            left = self._buffered
        if left and not self.fenced:
            _warn(f"{left} point(s) not delivered before exit; the platform backfills them from metrics.jsonl")

    # ------------------------------------------------------------------ buffering

    def _put(self, item: _Item) -> None:
        with self._cond:
            if self.fenced or self._closing:
                return
            while self._buffered + item.points > self.max_buffered_points and self._drop_oldest_metrics():
                pass
            if self._buffered + item.points > self.max_buffered_points:
                self._count_drop(item)  # nothing older left to drop: everything waiting is in flight
                return
            self._queue.append(item)
            self._buffered += item.points
            self._cond.notify_all()

    def _drop_oldest_metrics(self) -> bool:
        for index, queued in enumerate(self._queue):
            if queued.endpoint == "metrics":
                del self._queue[index]
                self._buffered -= queued.points
                self._count_drop(queued)
                return True
        return False

    def _count_drop(self, item: _Item) -> None:
        self.dropped_points += item.points
        if item.endpoint == "metrics":
            self._unreported_drops.append(int(item.record.get("step", 0)))

    def _ready(self) -> bool:
        if not self._queue:
            return False
        if self._closing or self._buffered >= self.batch_size:
            return True
        return time.monotonic() - self._queue[0].queued_at >= self.flush_interval_s

    def _take_batch(self) -> list[_Item]:
        """The next request's records: a run of consecutive items for one endpoint, within the size limits."""
        endpoint = self._queue[0].endpoint
        batch, points = [], 0
        limit = self.batch_size if endpoint == "metrics" else MAX_EVENTS_PER_REQUEST
        while self._queue and self._queue[0].endpoint == endpoint:
            if batch and points + self._queue[0].points > limit:
                break
            item = self._queue.popleft()
            batch.append(item)
            points += item.points
        return batch

    # ------------------------------------------------------------------ the sending thread

    def _loop(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                while not self._ready():
                    if self._closing and not self._queue:
                        return
                    timeout = None
                    if self._queue:
                        timeout = max(0.0, self._queue[0].queued_at + self.flush_interval_s - time.monotonic())
                    self._cond.wait(timeout)
                batch = self._take_batch()
            outcome = self._send(batch)
            with self._cond:
                if outcome == "retry":
                    self._queue.extendleft(reversed(batch))
                else:
                    self._buffered -= sum(item.points for item in batch)
                if outcome == "fenced":
                    self.fenced = True
                    self._queue.clear()
                    self._buffered = 0
                    return
            if outcome == "retry":
                attempt += 1
                delay = min(self.max_backoff_s, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                with self._cond:
                    if self._closing and time.monotonic() + delay > self._close_deadline:
                        return  # give up: close() has waited long enough, the files have everything
                    self._cond.wait(delay)
                continue
            attempt = 0
            if outcome == "sent":
                self._report_drops()

    def _send(self, batch: list[_Item]) -> str:
        endpoint = batch[0].endpoint
        key = "records" if endpoint == "metrics" else "events"
        status, body = self._post(endpoint, {key: [item.record for item in batch]})
        if status is not None and 200 <= status < 300:
            if endpoint == "metrics":
                self.sent_points += sum(item.points for item in batch)
            return "sent"
        if status in FENCED_STATUSES:
            _warn(f"the platform refused this run's token (HTTP {status}: {body}); no longer sending")
            return "fenced"
        if status is None or status in RETRY_STATUSES:
            return "retry"
        self.refused_batches += 1
        _warn(f"the platform refused a {endpoint} batch (HTTP {status}: {body}); dropped it")
        return "refused"

    def _post(self, endpoint: str, payload: dict[str, Any]) -> tuple[int | None, str]:
        data = json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}/{endpoint}", data=data, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(500).decode(errors="replace")
        except (OSError, ValueError):  # refused, reset, timed out, DNS: the platform is not reachable now
            return None, ""

    def _report_drops(self) -> None:
        with self._cond:
            steps, self._unreported_drops = self._unreported_drops, []
        if not steps:
            return
        message = (
            f"the ingestion sink fell behind and dropped {len(steps)} metric record(s) (steps {min(steps)}-"
            f"{max(steps)}) from memory; they are in metrics.jsonl and the platform backfills them"
        )
        _warn(message)
        record = {"kind": "warning", "message": message, "step": max(steps), "at": time.time(), "data": {}}
        self._post("events", {"events": [record]})


def _warn(message: str) -> None:
    print(f"warning: ingestion: {message}", file=sys.stderr, flush=True)
