"""Evaluation and difficulty jobs on a Slurm cluster: submitted through slurmrestd, followed until they end.

Submit (``submit``: the ``workers.eval_jobs.submit_slurm`` task, on the Slurm queue): only a ``queued`` job is
taken, with a compare-and-swap to ``running``, so a redelivered or re-sent message never submits a second
Slurm job. Its directory is made on the cluster's shared filesystem, ``<runs dir>/evals/eval-<id>`` (or
``difficulty-<id>``), group-writable for the job user as a run's is, with the job's frozen spec in it. The
batch script is the run launcher's (``workers.launchers.slurm``: umask, the cluster's job template, the
trainer command, everything appended to ``job.log``, ``exit_status.json`` at the end) around the command a
local worker would run (``workers/model_jobs.py``): one process on one node, ``job.gpus`` GPUs, the
cluster's partition, account and QoS. When Slurm refuses the job (an unknown partition, bad credentials, an
unreachable cluster), the job fails at once with Slurm's own words (``slurm_lifecycle.refusal``).

Follow (``reconcile``: beat's ``workers.eval_jobs.reconcile_slurm``, one client per cluster per round):

    PENDING            running, the reason in words ("pending in Slurm as job 12 (Resources: ...)")
    RUNNING, ...       running, "running on <nodes> as Slurm job 12"
    COMPLETED          the outputs read from the job's directory into the database (``model_jobs.store``,
                       as a local job's): succeeded
    CANCELLED          cancelled (from outside OR1 Lab too: ``scancel``)
    anything else      failed: the CLI's error line from ``job.log``, Slurm's state and node

A Slurm job that Slurm no longer knows is judged by the ``exit_status.json`` its script wrote, else the job
fails saying it vanished. When Slurm cannot be asked, nothing changes until the next round.

Cancel (``cancel``: the ``workers.eval_jobs.cancel_slurm`` task): Slurm's full cancel (SIGTERM, KillWait,
SIGKILL); an evaluation has nothing to checkpoint. The job stays ``cancelling`` until the reconciler sees its
Slurm job end, and then ends ``cancelled`` (``succeeded`` if it completed first).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path, PurePosixPath

import yaml
from django.utils import timezone

from experiments.models import JobStatus, Run, SlurmCluster
from experiments.models.jobs import ACTIVE_JOB_STATUSES
from experiments.secrets import SecretUnreadable
from workers import model_jobs, slurm_lifecycle
from workers.launchers import slurm as launcher
from workers.reconcile import LAUNCH_TIMEOUT_S
from workers.slurm import JobRequest, JobScriptSpec, SlurmError
from workers.slurm_reconcile import pending_reason, shell_code
from workers.wrapper import EXIT_STATUS_FILE

log = logging.getLogger(__name__)

#: failures of asking Slurm (an unreadable key file is an OSError)
ASK_ERRORS = (SlurmError, SecretUnreadable, ValueError, OSError)


def active_jobs() -> list:
    """Every job of either kind that a Slurm cluster has (or is being given)."""
    return [
        job
        for model in model_jobs.MODELS.values()
        for job in model.objects.filter(launcher=Run.Launcher.SLURM, status__in=ACTIVE_JOB_STATUSES)
        .select_related("cluster")
    ]


def job_name(job) -> str:
    """The Slurm job's name: how the reconciler knows that a job id still names this job."""
    return f"or1-{job.kind}-{job.pk}"


def work_dir_for(job, cluster: SlurmCluster) -> str:
    return str(PurePosixPath(cluster.runs_dir) / "evals" / model_jobs.dir_name(job))


def job_request(job, cluster: SlurmCluster, work: str) -> JobRequest:
    script = JobScriptSpec(
        run_dir=work,
        trainer_args=model_jobs.cli_args(job, work),
        gpus_per_node=job.gpus or 0,
        procs_per_node=1,
        env_setup=launcher.env_setup(cluster),
        job_name=job_name(job),
        trainer_command=cluster.trainer_argv(),
        log_file=model_jobs.LOG_FILE,
        exit_status_file=EXIT_STATUS_FILE,
    )
    return launcher.request(cluster, script, {}, {})


def _prepare(job, work: Path) -> None:
    if not work.parent.is_dir():
        launcher.make_job_dir(work.parent)
    launcher.make_job_dir(work)
    launcher.write_job_file(work / model_jobs.SPEC_FILE, yaml.safe_dump(job.spec, sort_keys=False))
    (work / EXIT_STATUS_FILE).unlink(missing_ok=True)


def submit(model, job_id: int) -> str:
    job = model.objects.select_related("cluster").filter(pk=job_id).first()
    if job is None or job.status != JobStatus.QUEUED:
        return f"not submitted: {model.kind} job {job_id} is {job.status if job else 'gone'}"
    cluster = job.cluster
    if cluster is None:
        if job.claim(""):
            job.finish(JobStatus.FAILED, "its Slurm cluster was removed from OR1 Lab before the job was submitted")
        return job.status
    work = work_dir_for(job, cluster)
    if not job.claim(work, reason=f"submitting to Slurm cluster {cluster.name}"):
        return f"not submitted: {job.label} is {job.status}"
    try:
        _prepare(job, Path(work))
        with cluster.client() as client:
            slurm_job_id = client.submit(job_request(job, cluster, work))
    except (*ASK_ERRORS, yaml.YAMLError) as exc:
        log.warning("%s: submission to %s failed: %s", job.label, cluster, exc)
        job.finish(JobStatus.FAILED, slurm_lifecycle.refusal(cluster, exc))
        return job.status
    model.objects.filter(pk=job.pk).update(slurm_job_id=slurm_job_id, slurm_state="PENDING")
    model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status_reason=f"submitted to Slurm cluster {cluster.name} as job {slurm_job_id}"
    )
    job.refresh_from_db()
    if job.status != JobStatus.RUNNING:  # cancelled while it was being submitted
        _scancel(job)
    log.info("%s: submitted as Slurm job %s on %s", job.label, slurm_job_id, cluster)
    return f"submitted Slurm job {slurm_job_id}"


def cancel(model, job_id: int) -> str:
    job = model.objects.select_related("cluster").filter(pk=job_id).first()
    if job is None or job.status != JobStatus.CANCELLING:
        return f"nothing to cancel: {model.kind} job {job_id} is {job.status if job else 'gone'}"
    if job.slurm_job_id is None:
        return "not submitted yet: its submission cancels it"
    return _scancel(job)


def _scancel(job) -> str:
    if job.cluster is None:
        return f"its cluster is no longer registered: cancel Slurm job {job.slurm_job_id} in Slurm"
    try:
        with job.cluster.client() as client:
            client.cancel(job.slurm_job_id, "SIGKILL")
    except ASK_ERRORS as exc:
        log.warning("%s: cancelling Slurm job %s failed: %s", job.label, job.slurm_job_id, exc)
        return f"cancel failed: {exc}"
    return "cancelled in Slurm"


def reconcile() -> dict[str, str]:
    """Follow every active Slurm job of either kind; what each did, by the job's label."""
    clients: dict[int, object] = {}
    outcomes = {}
    try:
        for job in active_jobs():
            try:
                outcomes[job.label] = follow(job, clients)
            except Exception:
                log.exception("following %s failed", job.label)
                outcomes[job.label] = "error"
    finally:
        for client in clients.values():
            client.close()
    return outcomes


def follow(job, clients: dict) -> str:
    if job.slurm_job_id is None:
        return _not_submitted(job)
    cluster = job.cluster
    if cluster is None:
        job.finish(JobStatus.FAILED, f"its Slurm cluster was removed from OR1 Lab while Slurm job "
                                     f"{job.slurm_job_id} was active: OR1 Lab can no longer follow it")
        return job.status
    try:
        client = clients.get(cluster.pk) or clients.setdefault(cluster.pk, cluster.client())
        info = client.job(job.slurm_job_id)
    except ASK_ERRORS as exc:
        return f"cannot ask Slurm: {exc}"
    if info is None or info.name != job_name(job):
        return _vanished(job)
    if not info.terminal:
        if job.status == JobStatus.CANCELLING:
            return "cancelling: " + _scancel(job)
        running = f"running on {info.node_list} as Slurm job {info.job_id}"
        job.note(pending_reason(info) if info.state == "PENDING" else running, slurm_state=info.state)
        return info.state
    where = f"Slurm job {info.job_id} {info.state}" + (f" on {info.node_list}" if info.node_list else "")
    return _ended(job, info.state, shell_code(info.exit), where)


def _ended(job, state: str, code: int | None, where: str) -> str:
    type(job).objects.filter(pk=job.pk).update(slurm_state=state)
    work = Path(job.work_dir)
    if state == "COMPLETED":
        try:
            model_jobs.store(job, work)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            job.finish(JobStatus.FAILED, f"its outputs in {work} could not be read: {exc} ({where})")
    elif job.status == JobStatus.CANCELLING:
        job.finish(JobStatus.CANCELLED, f"{job.status_reason} ({where})")
    elif state == "CANCELLED":
        job.finish(JobStatus.CANCELLED, f"Slurm cancelled it outside OR1 Lab: scancel or an admin ({where})")
    elif state == "TIMEOUT":
        job.finish(JobStatus.FAILED, f"it reached the partition's time limit ({where})")
    elif state == "OUT_OF_MEMORY":
        job.finish(JobStatus.FAILED, f"it ran out of memory ({where})")
    else:
        job.finish(JobStatus.FAILED, model_jobs.failure(work, code, where))
    return job.status


def _vanished(job) -> str:
    """Slurm no longer knows the job: judge it by the exit status its script recorded, else fail."""
    status = launcher.exit_status(Path(job.work_dir)) if job.work_dir else None
    if status is not None:
        code = status["exit_code"]
        where = f"Slurm job {job.slurm_job_id}; Slurm no longer knows it, its exit_status.json gave the outcome"
        return _ended(job, "COMPLETED" if code == 0 else "FAILED", code, where)
    if job.status == JobStatus.CANCELLING:
        job.finish(JobStatus.CANCELLED, f"{job.status_reason} (Slurm job {job.slurm_job_id} is gone)")
        return job.status
    job.finish(
        JobStatus.FAILED,
        f"Slurm job {job.slurm_job_id} vanished: Slurm no longer knows it and its directory has no "
        f"{EXIT_STATUS_FILE}, so it ended without recording how (killed, or its node was lost)",
    )
    return job.status


def _not_submitted(job) -> str:
    """A job taken for submission with no Slurm job yet: being submitted, or its submitting worker died."""
    if job.status == JobStatus.CANCELLING:
        job.finish(JobStatus.CANCELLED, f"{job.status_reason} (before it was submitted to Slurm)")
        return job.status
    if job.started_at and timezone.now() - job.started_at < timedelta(seconds=LAUNCH_TIMEOUT_S):
        return "submitting"
    job.finish(JobStatus.FAILED, f"no Slurm job was submitted within {LAUNCH_TIMEOUT_S}s of taking it "
                                 "(its worker may have died): start the job again")
    return job.status
