"""Readiness: can this web process do everything it is asked to? One check per dependency, each with a reason.

``/readyz`` runs every check in ``CHECKS`` and answers 503 when one fails, naming the dependency and the
error, so an operator (or an orchestrator that holds traffic back) sees *why* without opening a log:

    database      ``SELECT 1`` on the default connection
    broker        a connection to the Celery broker (Redis in production; the filesystem broker in the
                  embedded default), opened with a short timeout
    slurm:<name>  ``ping`` of each configured Slurm cluster through slurmrestd

A check is a callable returning ``Check`` results, so adding one (the result backend, a pub/sub fan-out) is
one function appended to ``CHECKS``. Each check bounds its own time: a readiness probe that hangs is worse
than one that fails.

Slurm clusters come from the database when a ``SlurmCluster`` model is installed (clusters as data, issue
6): every row is pinged through its ``client(timeout=...)`` method, which returns a
``workers.slurm.SlurmClient`` with the stored credentials. Without that model, the one cluster configured by
``SLURM_REST_URL`` (with ``SLURM_REST_USER`` and a token or key, see ``SlurmClient.from_env``) is checked, if
any. No cluster configured means nothing to check, not a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection

#: seconds a broker or Slurm check may take before it counts as unreachable
TIMEOUT_S = 3.0
SLURM_MODEL_NAME = "SlurmCluster"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3)}


def _timed(name: str, probe: Callable[[], str]) -> Check:
    """Run ``probe`` (which returns a short 'ok' detail or raises) and turn the outcome into a Check."""
    started = time.monotonic()
    try:
        detail = probe()
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is the reason to report
        return Check(name, False, f"{exc.__class__.__name__}: {exc}".strip(), time.monotonic() - started)
    return Check(name, True, detail, time.monotonic() - started)


def check_database() -> list[Check]:
    def probe() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return connection.vendor

    result = _timed("database", probe)
    if not result.ok:
        # A broken connection stays broken for this thread's next request unless it is dropped.
        try:
            connection.close()
        except DatabaseError:
            pass
    return [result]


def check_broker() -> list[Check]:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL

    def probe() -> str:
        with Connection(
            url,
            connect_timeout=TIMEOUT_S,
            transport_options=dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS),
        ) as conn:
            # One attempt, no retry loop: kombu's own retries would stretch a failed probe to minutes.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_S)
            return conn.as_uri()  # the password is masked

    return [_timed("broker", probe)]


def slurm_clusters() -> Iterator[tuple[str, Callable[[], object]]]:
    """(name, client factory) for every configured Slurm cluster: database rows, else the environment."""
    model = next((m for m in apps.get_models() if m.__name__ == SLURM_MODEL_NAME), None)
    if model is not None:
        for cluster in model.objects.all():
            yield str(cluster), lambda cluster=cluster: cluster.client(timeout=TIMEOUT_S)
        return
    if os.environ.get("SLURM_REST_URL"):
        from workers.slurm import SlurmClient

        yield "env", lambda: SlurmClient.from_env(timeout=TIMEOUT_S)


def check_slurm() -> list[Check]:
    results = []
    for name, make_client in slurm_clusters():

        def probe(make_client=make_client) -> str:
            client = make_client()
            try:
                ping = client.ping()
            finally:
                client.close()
            if not ping.ok:  # a backup controller may be down; none answering is the failure
                names = ", ".join(c.hostname for c in ping.controllers) or "none listed"
                raise RuntimeError(f"slurmrestd answered but no slurmctld responds (controllers: {names})")
            return f"Slurm {ping.slurm_release or '?'} via {ping.api_version}"

        results.append(_timed(f"slurm:{name}", probe))
    return results


CHECKS: list[Callable[[], list[Check]]] = [check_database, check_broker, check_slurm]


def run_checks() -> list[Check]:
    return [result for check in CHECKS for result in check()]
