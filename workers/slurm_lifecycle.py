"""Submitting and cancelling a Slurm run: what the ``launch_slurm`` and ``cancel_slurm`` tasks do to the Run row.

Launch (``launch``): only a ``queued`` run is taken, moved to ``starting`` with a compare-and-swap, so a
redelivered task never submits a second job. The task issues the run's ingestion token (a new one per
attempt), prepares the run directory on the cluster's shared filesystem and submits the job; the Slurm job
id becomes ``Run.external_job_id`` and a ``SlurmJob`` row. When Slurm refuses (an unknown partition, more GPUs
than a node has, credentials it does not accept, a cluster it cannot reach), the run fails at once with
Slurm's own words as its reason. The run stays ``starting`` while the job is pending; the reconciler follows
it from there (``workers/slurm_reconcile.py``).

Cancel (``cancel``): a pending job has nothing to checkpoint, and Slurm refuses SIGTERM to it, so it is
cancelled outright; a running job gets SIGTERM (the trainer checkpoints and exits 143). The run is already
``cancelling``: that, not Slurm's final state, is the record that OR1 Lab cancelled it, since a job that
exits by itself after SIGTERM ends FAILED or COMPLETED, never CANCELLED. After ``OR1_CANCEL_GRACE_S`` the
reconciler sends SIGKILL (Slurm's full cancel) to a job that is still running.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from experiments.models import InvalidTransition, Run, RunStatus, SlurmCluster, SlurmJob
from experiments.secrets import SecretUnreadable
from workers.launchers import slurm as launcher
from workers.slurm import SlurmAuthError, SlurmError, SlurmSubmitRejected, SlurmUnavailable

log = logging.getLogger(__name__)


def cluster_of(run: Run) -> SlurmCluster | None:
    """The cluster the run's spec names, in the run's team."""
    name = run.spec_as_launched.get("resources", {}).get("cluster")
    team_id = run.experiment.project.team_id
    return SlurmCluster.objects.filter(team_id=team_id, name=name).first() if name else None


def ingest_url(run: Run, cluster: SlurmCluster) -> str:
    """The run's base ingestion URL as the compute nodes reach it (the cluster's, else OR1_PUBLIC_URL)."""
    base = (cluster.ingest_url or settings.OR1_PUBLIC_URL).rstrip("/")
    return base + reverse("ingest-metrics", args=[run.pk]).removesuffix("/metrics")


def refusal(cluster: SlurmCluster, exc: Exception) -> str:
    """The run's reason when a submission fails, in Slurm's words plus what to do about it."""
    if isinstance(exc, SlurmAuthError):
        return (
            f"Slurm cluster {cluster.name} did not accept the credentials of user {cluster.user}: {exc}. "
            "Set a new token or key for the cluster in the admin."
        )
    if isinstance(exc, SlurmSubmitRejected):
        return f"Slurm cluster {cluster.name} refused the job: {exc}"
    if isinstance(exc, SlurmUnavailable):
        return f"Slurm cluster {cluster.name} could not be reached: {exc}"
    if isinstance(exc, SlurmError):
        return f"Slurm cluster {cluster.name} failed the submission: {exc}"
    return f"the job could not be prepared for Slurm cluster {cluster.name}: {exc}"


def launch(run_id: int, *, resume: bool = False) -> str:
    run = Run.objects.filter(pk=run_id).select_related("experiment__project").first()
    if run is None or run.status != RunStatus.QUEUED:
        return f"not launched: run {run_id} is {run.status if run else 'gone'}"
    cluster = cluster_of(run)
    if cluster is None:
        name = run.spec_as_launched.get("resources", {}).get("cluster")
        run.transition_to(RunStatus.FAILED, reason=f"there is no Slurm cluster {name!r} in this run's team")
        return "failed"
    try:
        run.transition_to(
            RunStatus.STARTING,
            reason=f"submitting to Slurm cluster {cluster.name}" + (" with --resume" if resume else ""),
        )
    except InvalidTransition as exc:
        return f"not launched: {exc}"
    token = run.issue_ingest_token()
    run_dir = cluster.run_dir_for(run)
    Run.objects.filter(pk=run.pk).update(run_dir=run_dir, host="", pid=None, external_job_id="")
    run.run_dir = run_dir
    try:
        launcher.prepare_run_dir(Path(run_dir), run.spec_as_launched, resume=resume)
        request = launcher.job_request(
            run, cluster, run_dir, resume=resume, ingest_url=ingest_url(run, cluster), token=token
        )
        with cluster.client() as client:
            job_id = client.submit(request)
    except (SlurmError, SecretUnreadable, OSError, ValueError) as exc:
        log.warning("run %s: submission to %s failed: %s", run.pk, cluster, exc)
        run.transition_to(RunStatus.FAILED, reason=refusal(cluster, exc))
        return "failed"
    job = SlurmJob.objects.create(
        run=run, cluster=cluster, cluster_name=str(cluster), attempt=run.restarts, job_id=job_id
    )
    Run.objects.filter(pk=run.pk).update(external_job_id=str(job_id))
    run.refresh_from_db(fields=["status"])
    if run.status in (RunStatus.CANCELLING, RunStatus.CANCELLED, RunStatus.FAILED):
        send_signal(job, cluster, "SIGKILL")  # cancelled (or given up) while it was submitted: still pending
    log.info("run %s: submitted as Slurm job %s on %s", run.pk, job_id, cluster)
    return f"submitted Slurm job {job_id}"


def cancel(run_id: int) -> str:
    """SIGTERM the run's job (or cancel it outright while it is pending); returns what was done."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status != RunStatus.CANCELLING:
        return f"nothing to cancel: run {run_id} is {run.status if run else 'gone'}"
    job = run.slurm_jobs.select_related("cluster").first()
    if job is None or job.attempt != run.restarts:
        return "not submitted yet: the launch cancels it"
    if job.cluster is None:
        return f"the cluster {job.cluster_name} is no longer registered: cancel job {job.job_id} in Slurm"
    try:
        with job.cluster.client() as client:
            info = client.job(job.job_id)
    except (SlurmError, SecretUnreadable, ValueError, OSError) as exc:
        job.last_error = f"cancel: {exc}"
        job.save(update_fields=["last_error"])
        return f"could not ask Slurm: {exc}"
    if info is None or info.terminal:
        return "already ended: the reconciler records it"
    return send_signal(job, job.cluster, "SIGKILL" if info.state == "PENDING" else "SIGTERM")


def kill(job: SlurmJob) -> str:
    """Slurm's full cancel (SIGTERM, KillWait, SIGKILL) once a cancelled run's grace has run out."""
    if job.cluster is None:
        return f"the cluster {job.cluster_name} is no longer registered"
    return send_signal(job, job.cluster, "SIGKILL")


def send_signal(job: SlurmJob, cluster: SlurmCluster, signal: str) -> str:
    try:
        with cluster.client() as client:
            client.cancel(job.job_id, signal)
    except (SlurmError, SecretUnreadable, ValueError, OSError) as exc:
        job.last_error = f"{signal}: {exc}"
        job.save(update_fields=["last_error"])
        log.warning("Slurm job %s: %s failed: %s", job.job_id, signal, exc)
        return f"{signal} failed: {exc}"
    field = "kill_sent_at" if signal == "SIGKILL" else "term_sent_at"
    setattr(job, field, timezone.now())
    job.save(update_fields=[field])
    return f"sent {signal}"
