"""Starting and cancelling a local run on this host: what the launch and cancel tasks do to the Run row.

Launch (``launch_here``): only a ``queued`` run is taken, with a compare-and-swap to ``starting``, so a
redelivered or duplicated task message never starts a second trainer. The task then removes the exit status
an earlier attempt left in the run directory (a relaunched or resumed run's last end is history, and the
reconciler must not read it as this attempt's), issues the run's ingestion token (a new one per launch: a
trainer of an earlier, lost launch can no longer write), records host, queue, task id and the worker's
environment, starts the trainer detached and records its PID. It returns as soon as the process is up. If a
cancel arrived meanwhile, the new trainer is stopped at once.

Cancel (``cancel_here``): SIGTERM to the run's wrapper, which forwards it to the trainer (checkpoint, exit
143). The follow-up check, sent to this host's queue to run after the grace period, SIGKILLs whatever is
left; the reconciler then records ``cancelled``.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from experiments.models import InvalidTransition, Run, RunStatus
from workers.environment import environment_record
from workers.launchers import local
from workers.wrapper import EXIT_STATUS_FILE

log = logging.getLogger(__name__)


def ingest_url(run: Run) -> str:
    """The run's base ingestion URL; the trainer's sink appends ``/metrics``, ``/events``, ``/checkpoints``."""
    return settings.OR1_PUBLIC_URL + reverse("ingest-metrics", args=[run.pk]).removesuffix("/metrics")


def launch_here(run_id: int, *, job_id: str, resume: bool = False) -> str:
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status != RunStatus.QUEUED:
        return f"not launched: run {run_id} is {run.status if run else 'gone'}"
    host = socket.gethostname()
    try:
        run.transition_to(RunStatus.STARTING, reason=f"starting on {host}" + (" with --resume" if resume else ""))
    except InvalidTransition as exc:
        return f"not launched: {exc}"
    (Path(run.run_dir) / EXIT_STATUS_FILE).unlink(missing_ok=True)
    with transaction.atomic():
        token = run.issue_ingest_token()
        run.host, run.external_job_id, run.pid = host, job_id, None
        run.environment = environment_record() | {"worker_queue": settings.OR1_WORKER_QUEUE}
        run.save(update_fields=["host", "external_job_id", "pid", "environment"])
    attempt = f"run {run.pk} launch {run.restarts + 1}" + (" (--resume)" if resume else "")
    try:
        pid = local.start(
            Path(run.run_dir),
            run.spec_as_launched,
            ingest_url=ingest_url(run),
            token=token,
            resume=resume,
            header=f"{attempt} on {host}",
        )
    except Exception as exc:  # noqa: BLE001 - any failure to start is the run's failure, in words
        log.exception("run %s: the trainer did not start", run.pk)
        run.transition_to(RunStatus.FAILED, reason=f"the trainer could not be started: {exc}")
        return "failed"
    Run.objects.filter(pk=run.pk).update(pid=pid)
    run.refresh_from_db(fields=["status", "pid"])
    if run.status == RunStatus.CANCELLING:  # cancelled while it was starting
        local.terminate(Path(run.run_dir), pid)
    log.info("run %s: trainer started on %s (wrapper pid %s)", run.pk, host, pid)
    return f"started pid {pid}"


def cancel_here(run_id: int) -> str:
    """SIGTERM the run's trainer; returns what was done (the follow-up check is the caller's to schedule)."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status != RunStatus.CANCELLING:
        return f"nothing to cancel: run {run_id} is {run.status if run else 'gone'}"
    if run.pid is None:
        return "not started yet: the launch stops it"
    signalled = local.terminate(Path(run.run_dir), run.pid)
    return "sent SIGTERM" if signalled else "no process left"
