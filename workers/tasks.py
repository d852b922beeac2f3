"""Celery tasks: thin wrappers around ``workers.lifecycle`` and ``workers.reconcile``.

Routing: ``launch`` goes to a host's own queue (``OR1_LOCAL_LAUNCH_QUEUE`` for a new run, the run's host
queue for a relaunch); ``cancel`` and ``reconcile_host`` go to the queue of the host the run is on, the only
place its processes can be signalled; ``reconcile`` (beat) goes to the beat host's queue and fans out.
Every task returns in seconds; none waits for a training run.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from experiments.actions import worker_queue
from workers import lifecycle
from workers import reconcile as reconciliation


@shared_task(name="workers.tasks.launch", bind=True)
def launch(self, run_id: int, resume: bool = False) -> str:
    return lifecycle.launch_here(run_id, job_id=self.request.id or "", resume=resume)


@shared_task(name="workers.tasks.cancel")
def cancel(run_id: int) -> str:
    outcome = lifecycle.cancel_here(run_id)
    if outcome == "sent SIGTERM":
        # The grace period's end, on this same host: SIGKILL what is left, then record the outcome.
        reconcile_host.apply_async(queue=settings.OR1_WORKER_QUEUE, countdown=settings.OR1_CANCEL_GRACE_S + 1)
    return outcome


@shared_task(name="workers.tasks.reconcile_host")
def reconcile_host() -> dict[int, str]:
    return reconciliation.reconcile_host()


@shared_task(name="workers.tasks.reconcile")
def reconcile() -> list[str]:
    queues = sorted(reconciliation.queues_with_active_runs())
    for queue in queues:
        reconcile_host.apply_async(queue=queue, expires=settings.OR1_RECONCILE_INTERVAL_S * 3)
    for run in reconciliation.stale_queued_runs():
        launch.apply_async(args=[run.pk], kwargs={"resume": run.restarts > 0}, queue=worker_queue(run))
    return queues
