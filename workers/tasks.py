"""Celery tasks: thin wrappers around ``workers.lifecycle`` and ``workers.reconcile``.

Routing: ``launch`` goes to a host's own queue (``OR1_LOCAL_LAUNCH_QUEUE`` for a new run, the run's host
queue for a relaunch); ``cancel`` and ``reconcile_host`` go to the queue of the host the run is on, the only
place its processes can be signalled; ``reconcile`` (beat) goes to the beat host's queue and fans out.
The Slurm tasks (``launch_slurm``, ``cancel_slurm``, ``reconcile_slurm``) go to the Slurm queue
(``experiments.actions.slurm_queue``): any worker there reaches slurmrestd and the clusters' runs directories.
The tasks of evaluation and difficulty jobs are ``workers/eval_jobs.py``'s; beat's ``reconcile`` also follows
their Slurm jobs there and re-sends (then fails) a job that no worker took.
Every task returns in seconds; none waits for a training run.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from experiments.actions import slurm_queue, worker_queue
from workers import eval_jobs, lifecycle, slurm_eval_jobs, slurm_lifecycle, slurm_reconcile
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


@shared_task(name="workers.tasks.launch_slurm")
def launch_slurm(run_id: int, resume: bool = False) -> str:
    return slurm_lifecycle.launch(run_id, resume=resume)


@shared_task(name="workers.tasks.cancel_slurm")
def cancel_slurm(run_id: int) -> str:
    outcome = slurm_lifecycle.cancel(run_id)
    if outcome == "sent SIGTERM":  # the grace period's end: SIGKILL if the job still runs, record the outcome
        reconcile_slurm.apply_async(queue=slurm_queue(), countdown=settings.OR1_CANCEL_GRACE_S + 1)
    return outcome


@shared_task(name="workers.tasks.reconcile_slurm")
def reconcile_slurm() -> dict[int, str]:
    return slurm_reconcile.reconcile()


@shared_task(name="workers.tasks.reconcile")
def reconcile() -> list[str]:
    queues = sorted(reconciliation.queues_with_active_runs())
    for queue in queues:
        reconcile_host.apply_async(queue=queue, expires=settings.OR1_RECONCILE_INTERVAL_S * 3)
    for run in reconciliation.stale_queued_runs():
        launch.apply_async(args=[run.pk], kwargs={"resume": run.restarts > 0}, queue=worker_queue(run))
    if slurm_reconcile.active_slurm_runs().exists():
        reconcile_slurm.apply_async(queue=slurm_queue(), expires=settings.OR1_RECONCILE_INTERVAL_S * 3)
        queues.append(slurm_queue())
    for run in slurm_reconcile.stale_queued_runs():
        launch_slurm.apply_async(args=[run.pk], kwargs={"resume": run.restarts > 0}, queue=slurm_queue())
    # evaluation and difficulty jobs: follow those on Slurm; send again (then fail) those no worker took
    if slurm_eval_jobs.active_jobs():
        eval_jobs.reconcile_slurm.apply_async(queue=slurm_queue(), expires=settings.OR1_RECONCILE_INTERVAL_S * 3)
        queues += [slurm_queue()] if slurm_queue() not in queues else []
    eval_jobs.resend_or_fail_queued()
    return queues


@shared_task(name="workers.tasks.advance_sweeps")
def advance_sweeps() -> dict[int, int]:
    """Launch the next points of every sweep with room under its concurrency limit (beat)."""
    from experiments.sweeps import advance_sweeps as advance

    return advance()
