"""Reconciliation of Slurm runs: make each active Slurm run's row agree with what Slurm says about its job.

Beat's ``workers.tasks.reconcile`` sends one ``reconcile_slurm`` task per round to the Slurm queue
(``OR1_SLURM_QUEUE``); it asks slurmrestd about the newest job of every active Slurm run (one client per
cluster per round) and stores the answer on the ``SlurmJob`` (state, reason, node list, exit), because Slurm
forgets a finished job ``MinJobAge`` seconds after it ends. Then, for the run:

    PENDING                 stays ``starting``; its reason says why in words (Resources, Priority, ...)
    RUNNING (COMPLETING,    ``running`` on its node list; points the platform missed are backfilled from
    SUSPENDED, ...)         ``metrics.jsonl`` when the run directory is visible here
    COMPLETED               ``succeeded``
    FAILED                  ``failed`` with the decoded exit code and the trainer's error line, except exit
                            143 (the trainer checkpointed after a SIGTERM): ``cancelled``
    CANCELLED               ``cancelled`` (from outside OR1 Lab too: ``scancel``)
    TIMEOUT, OUT_OF_MEMORY, ``failed``, saying which limit to raise
    DEADLINE
    PREEMPTED, NODE_FAIL,   requeued (a new job with ``--resume``) while ``spec.resources.max_restarts``
    BOOT_FAIL               allows, else ``failed``

A ``cancelling`` run ends ``cancelled`` whatever the job's final state, unless the trainer finished first: a
job that exits after SIGTERM ends FAILED (exit 143) or COMPLETED, never CANCELLED, so the run's own status is
the record of the cancel. A cancelling job still pending is cancelled outright; one still running
``OR1_CANCEL_GRACE_S`` after the cancel gets SIGKILL.

A job Slurm no longer knows (or whose id now names another job: ``slurmctld -c`` restarts the ids) is judged
by the facts stored when it was last seen if they were final, else by the ``exit_status.json`` the job script
writes into the run directory, else the run fails saying the job vanished. When Slurm cannot be asked (an
unreachable cluster, rejected credentials) nothing changes; the job's ``last_error`` says why.
"""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from experiments.actions import relaunch_run
from experiments.ingestion import import_run_dir
from experiments.models import InvalidTransition, Run, RunStatus, SlurmJob
from experiments.secrets import SecretUnreadable
from workers import slurm_lifecycle
from workers.launchers import local
from workers.launchers import slurm as launcher
from workers.reconcile import LAUNCH_TIMEOUT_S, RESEND_LAUNCH_AFTER_S, backfill_if_behind, status_since
from workers.slurm import ExitStatus, JobInfo, SlurmError

log = logging.getLogger(__name__)

EXIT_CANCELLED = 143
#: ended by the cluster, not by the trainer: worth another attempt from the newest checkpoint
REQUEUE_STATES = frozenset({"PREEMPTED", "NODE_FAIL", "BOOT_FAIL"})
#: what a pending job's reason means, for the run page
PENDING_REASONS = {
    "Resources": "waiting for resources: the nodes it needs are busy",
    "Priority": "waiting behind jobs of higher priority",
    "Dependency": "waiting for the jobs it depends on",
    "BeginTime": "waiting for its start time",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows: it will not start as it is",
    "PartitionTimeLimit": "its time limit is above the partition's: it will not start as it is",
    "PartitionConfig": "the partition cannot run it as requested: it will not start as it is",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "QOSMaxJobsPerUserLimit": "the QoS allows no more running jobs for this user now",
    "AssocGrpGRES": "the account's GPU limit is reached",
}
HINTS = {
    126: "the trainer command is not executable on the node",
    127: "the trainer command was not found on the node: check the cluster's trainer command and job template",
}


def active_slurm_runs():
    return (
        Run.objects.active()
        .filter(launcher=Run.Launcher.SLURM)
        .exclude(status=RunStatus.QUEUED)
        .select_related("experiment__project")
    )


def stale_queued_runs(older_than_s: float = RESEND_LAUNCH_AFTER_S) -> list[Run]:
    """Slurm runs waiting in ``queued`` for longer than ``older_than_s`` (their launch task may be lost)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    queued = Run.objects.filter(launcher=Run.Launcher.SLURM, status=RunStatus.QUEUED)
    return [run for run in queued if (since := status_since(run, RunStatus.QUEUED)) and since < cutoff]


def reconcile() -> dict[int, str]:
    """Reconcile every active Slurm run; returns what each did."""
    clients: dict[int, object] = {}
    outcomes = {}
    try:
        for run in active_slurm_runs():
            try:
                outcomes[run.pk] = reconcile_run(run, clients)
            except InvalidTransition as exc:  # something else moved the run meanwhile: next round sees it
                outcomes[run.pk] = f"skipped: {exc}"
            except Exception:
                log.exception("reconciling Slurm run %s failed", run.pk)
                outcomes[run.pk] = "error"
    finally:
        for client in clients.values():
            client.close()
    return outcomes


def reconcile_run(run: Run, clients: dict) -> str:
    job = run.slurm_jobs.select_related("cluster").first()
    if job is None or job.attempt != run.restarts:
        return _not_submitted(run)
    if job.cluster is None:
        run.transition_to(
            RunStatus.FAILED,
            reason=f"the Slurm cluster {job.cluster_name} was removed from OR1 Lab while job {job.job_id} was "
            "active: OR1 Lab can no longer follow it (check the job in Slurm)",
        )
        return run.status
    try:
        client = clients.get(job.cluster_id) or clients.setdefault(job.cluster_id, job.cluster.client())
        info = client.job(job.job_id)
    except (SlurmError, SecretUnreadable, ValueError, OSError) as exc:  # OSError: an unreadable key file
        job.last_error = str(exc)
        job.save(update_fields=["last_error"])
        return f"cannot ask Slurm: {exc}"
    if info is None or info.name != launcher.job_name(run):
        return _vanished(run, job)
    job.record(info)
    if run.status == RunStatus.CANCELLING and not info.terminal:
        return _stop(run, job, info)
    return follow(run, job, info)


def _not_submitted(run: Run) -> str:
    """A run whose newest attempt has no job yet: its launch task is submitting it, or died doing so."""
    if run.status == RunStatus.CANCELLING:
        run.transition_to(RunStatus.CANCELLED, reason="cancelled before it was submitted to Slurm")
        return run.status
    since = status_since(run, RunStatus.STARTING)
    if since and timezone.now() - since < timedelta(seconds=LAUNCH_TIMEOUT_S):
        return "submitting"
    run.transition_to(
        RunStatus.FAILED,
        reason=f"no Slurm job was submitted within {LAUNCH_TIMEOUT_S}s of the launch (its worker may have died)",
    )
    return run.status


def _stop(run: Run, job: SlurmJob, info: JobInfo) -> str:
    """A cancelled run whose job is still alive: cancel a pending one, SIGTERM (again), SIGKILL after grace."""
    if info.state == "PENDING":
        return "cancelling: " + (slurm_lifecycle.kill(job) if job.kill_sent_at is None else "cancel sent")
    if job.term_sent_at is None:  # the cancel task was lost, or the job started after it looked
        return "cancelling: " + slurm_lifecycle.send_signal(job, job.cluster, "SIGTERM")
    grace = settings.OR1_CANCEL_GRACE_S
    if job.kill_sent_at is None and timezone.now() - job.term_sent_at >= timedelta(seconds=grace):
        log.warning("run %s: Slurm job %s still %s %ss after SIGTERM", run.pk, job.job_id, info.state, grace)
        return "cancelling: " + slurm_lifecycle.kill(job)
    return "cancelling"


def _backfill(run: Run, *, live: bool = False) -> None:
    """Import what the run directory holds, when this host sees the cluster's shared filesystem."""
    if run.run_dir and Path(run.run_dir).is_dir():
        import_run_dir(run, run.run_dir, live=live)


def follow(run: Run, job: SlurmJob, info: JobInfo) -> str:
    """Bring ``run`` in line with its job's state ``info`` (already stored on ``job``); returns the outcome."""
    if not info.terminal:
        if info.state == "PENDING":
            return _pending(run, info)
        if run.status == RunStatus.STARTING:
            run.transition_to(RunStatus.RUNNING, reason=f"running on {info.node_list} as Slurm job {job.job_id}")
        Run.objects.filter(pk=run.pk).exclude(host=info.node_list or "").update(host=info.node_list or "")
        if run.run_dir and Path(run.run_dir).is_dir():
            backfill_if_behind(run)
        return f"running ({info.state})"
    _backfill(run)
    run.refresh_from_db()
    if run.is_terminal:
        return run.status
    return finish(run, job, info)


def pending_reason(info: JobInfo) -> str:
    """A pending job's reason in words: "pending in Slurm as job 12 (Resources: waiting for resources: ...)"."""
    why = PENDING_REASONS.get(info.reason or "", "")
    return f"pending in Slurm as job {info.job_id}" + (
        f" ({info.reason}: {why})" if why else f" ({info.reason})" if info.reason else ""
    )


def _pending(run: Run, info: JobInfo) -> str:
    reason = pending_reason(info)
    Run.objects.filter(pk=run.pk, status=run.status).exclude(status_reason=reason).update(status_reason=reason)
    return f"pending ({info.reason})"


def shell_code(exit: ExitStatus | None) -> int | None:
    """The exit code as a shell reports it (128 + N when signal N killed the script)."""
    if exit is None:
        return None
    return exit.return_code if exit.return_code is not None else (128 + exit.signal if exit.signal else None)


def _signal_of(code: int | None) -> str | None:
    if code is None or code <= 128:
        return None
    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return None


def finish(run: Run, job: SlurmJob, info: JobInfo, *, note: str = "") -> str:
    """Record a terminal job state on an active run (or requeue it); ``note`` adds how it was learned."""
    state, code = info.state, shell_code(info.exit)
    where = f"Slurm job {job.job_id} {state}" + (f" on {info.node_list}" if info.node_list else "")
    where += f"; {note}" if note else ""
    limits = run.spec_as_launched.get("resources", {})
    if state == "COMPLETED":
        late = " before the cancel reached it" if run.status == RunStatus.CANCELLING else ""
        run.transition_to(RunStatus.SUCCEEDED, reason=f"the trainer finished{late} ({where})", exit_code=0)
    elif run.status == RunStatus.CANCELLING:
        if code == EXIT_CANCELLED:
            how = "the trainer checkpointed and stopped on SIGTERM"
        elif job.kill_sent_at is not None:
            how = f"killed {settings.OR1_CANCEL_GRACE_S}s after SIGTERM (it did not stop)"
        else:
            how = "cancelled"
        run.transition_to(RunStatus.CANCELLED, reason=f"{how} ({where})", exit_code=code)
    elif state in REQUEUE_STATES:
        return _requeue(run, where)
    elif state == "TIMEOUT":
        limit = limits.get("time_limit_minutes")
        run.transition_to(
            RunStatus.FAILED,
            reason=f"it reached its time limit{f' of {limit} minutes' if limit else ''} ({where}); its checkpoints "
            "are kept: relaunch with a longer resources.time_limit_minutes",
            exit_code=code,
        )
    elif state == "OUT_OF_MEMORY":
        memory = limits.get("memory_gb")
        run.transition_to(
            RunStatus.FAILED,
            reason=f"it ran out of memory{f' ({memory} GB per node)' if memory else ''} ({where}): ask for more "
            "with resources.memory_gb",
            exit_code=code,
        )
    elif state == "CANCELLED" or (state == "FAILED" and code == EXIT_CANCELLED):
        # Not OR1 Lab's cancel (the run would be cancelling): scancel, or a SIGTERM from an administrator.
        origin = "Slurm cancelled the job" if state == "CANCELLED" else "the trainer received SIGTERM"
        run.transition_to(RunStatus.CANCELLING, reason=f"{origin} outside OR1 Lab (scancel or an admin)")
        how = "the trainer checkpointed and stopped on SIGTERM" if code == EXIT_CANCELLED else "cancelled"
        run.transition_to(RunStatus.CANCELLED, reason=f"{how} ({where})", exit_code=code)
    else:
        run.transition_to(RunStatus.FAILED, reason=_failure(run, info, code, where), exit_code=code)
    return run.status


def _failure(run: Run, info: JobInfo, code: int | None, where: str) -> str:
    if code is None:
        return f"the job failed ({where})"
    name = _signal_of(code)
    cause = f"the trainer exited with code {code}" + (f" (killed by {name})" if name else "")
    error = local.log_error_line(Path(run.run_dir)) if run.run_dir else ""
    detail = error.removeprefix("error: ") or HINTS.get(code, "")
    reason = f", reason {info.reason}" if info.reason and info.reason != "NonZeroExitCode" else ""
    return cause + (f": {detail}" if detail else "") + f" ({where}{reason}; see trainer.log)"


def _requeue(run: Run, where: str) -> str:
    allowed = run.spec_as_launched.get("resources", {}).get("max_restarts", 0)
    if run.restarts < allowed:
        relaunch_run(run, reason=f"{where}; requeued with --resume ({run.restarts + 1} of {allowed})")
        return "requeued"
    run.transition_to(RunStatus.FAILED, reason=f"{where}; no restarts left ({run.restarts} of {allowed} used)")
    return run.status


def _vanished(run: Run, job: SlurmJob) -> str:
    """Slurm no longer knows the job: judge it by what was stored, else by the run directory."""
    if job.terminal:
        _backfill(run)
        run.refresh_from_db()
        return run.status if run.is_terminal else finish(run, job, job.as_info(), note="as last seen")
    status = launcher.exit_status(Path(run.run_dir)) if run.run_dir else None
    if status is not None:
        code = status["exit_code"]
        job.state = "COMPLETED" if code == 0 else "FAILED"
        job.exit_code, job.exit_signal = code, None
        job.save(update_fields=["state", "exit_code", "exit_signal"])
        _backfill(run)
        run.refresh_from_db()
        if run.is_terminal:
            return run.status
        note = "Slurm no longer knows it; the job's exit_status.json gave the outcome"
        return finish(run, job, job.as_info(), note=note)
    if run.status == RunStatus.CANCELLING:
        run.transition_to(RunStatus.CANCELLED, reason=f"Slurm job {job.job_id} is gone after the cancel")
        return run.status
    _backfill(run)
    run.transition_to(
        RunStatus.FAILED,
        reason=f"Slurm job {job.job_id} vanished: Slurm no longer knows it (it ended more than MinJobAge seconds "
        f"before OR1 Lab looked, or the controller lost its state) and the run directory has no "
        f"{launcher.EXIT_STATUS_FILE}, so the trainer ended without recording how (killed, or its node was lost)",
    )
    return run.status
