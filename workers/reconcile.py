"""Reconciliation: make each active local run's row agree with what its process actually did.

Celery beat sends ``workers.tasks.reconcile`` every ``OR1_RECONCILE_INTERVAL_S``; it fans out one
``reconcile_host`` task to the queue of every host with active local runs, and each host checks its own runs
(only that host can see their processes). For each run:

    still running          backfill points the platform missed (cheap: the last step of metrics.jsonl
                           against the run's step); a ``cancelling`` run past its grace period is SIGKILLed
    exited (the wrapper    0 -> succeeded, 143 -> cancelled (after SIGTERM), anything else -> failed with
    wrote exit_status)     the code and the trainer's error line in ``status_reason``; first a full backfill
                           from the run directory, so the finished run's record is complete
    lost (no process, no   its worker or wrapper was killed: a ``cancelling`` run is cancelled; otherwise the
    exit status)           run is relaunched with ``--resume`` from its newest checkpoint while
                           ``spec.resources.max_restarts`` allows, else failed

A run still ``starting`` without a PID is left alone for ``LAUNCH_TIMEOUT_S`` (its launch task is between
"took it" and "started it"); after that it counts as lost too. A run ``queued`` for longer than
``RESEND_LAUNCH_AFTER_S`` gets its launch task sent again: with late acks and a visibility timeout of days,
a launch message held by a worker that crashed would otherwise wait that long. A duplicate is harmless,
since only one launch task can move the run out of ``queued``. It is sent with ``--resume`` once the run has
restarted, which is also how a run a person resumed (``experiments.actions.resume_run``: failed or cancelled
back to ``queued``) is launched; from ``starting`` on, such a run is followed like any other, its earlier
exit status already removed by its new launch.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from experiments.actions import relaunch_run
from experiments.ingestion import import_run_dir, last_logged_step
from experiments.models import InvalidTransition, Run, RunEvent, RunStatus
from workers.launchers import local

log = logging.getLogger(__name__)

LAUNCH_TIMEOUT_S = 120
RESEND_LAUNCH_AFTER_S = 300
EXIT_CANCELLED = 143


def active_local_runs(host: str | None = None):
    runs = Run.objects.active().filter(launcher=Run.Launcher.LOCAL).exclude(status=RunStatus.QUEUED)
    return runs.filter(host=host) if host else runs


def queues_with_active_runs() -> set[str]:
    queues = active_local_runs().values_list("environment__worker_queue", flat=True)
    return {queue for queue in queues if queue}


def stale_queued_runs(older_than_s: float = RESEND_LAUNCH_AFTER_S) -> list[Run]:
    """Local runs waiting in ``queued`` for longer than ``older_than_s`` (their launch may be stuck)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    queued = Run.objects.filter(launcher=Run.Launcher.LOCAL, status=RunStatus.QUEUED)
    return [run for run in queued if (since := status_since(run, RunStatus.QUEUED)) and since < cutoff]


def status_since(run: Run, status: str):
    """When the run last entered ``status`` (from its status events), or None."""
    return (
        run.events.filter(kind=RunEvent.Kind.STATUS, data__to=status)
        .order_by("-at", "-id")
        .values_list("at", flat=True)
        .first()
    )


def reconcile_host(host: str | None = None) -> dict[int, str]:
    """Reconcile every active local run started on ``host`` (default: this one); returns what each did."""
    outcomes = {}
    for run in active_local_runs(host or socket.gethostname()):
        try:
            outcomes[run.pk] = reconcile_run(run)
        except InvalidTransition as exc:  # something else moved the run meanwhile: next round sees it
            outcomes[run.pk] = f"skipped: {exc}"
        except Exception:
            log.exception("reconciling run %s failed", run.pk)
            outcomes[run.pk] = "error"
    return outcomes


def reconcile_run(run: Run) -> str:
    run_dir = Path(run.run_dir)
    state = local.inspect(run_dir, run.pid)
    if isinstance(state, local.Running):
        if run.status != RunStatus.CANCELLING or not _grace_expired(run):
            return "running" + (", backfilled" if backfill_if_behind(run) else "")
        killed = local.kill(run_dir)
        log.warning("run %s: still running %ss after SIGTERM; killed %s", run.pk, _grace(), killed)
        state = local.inspect(run_dir, run.pid)
    if run.pid is None and run.status == RunStatus.STARTING:
        since = status_since(run, RunStatus.STARTING)
        if since and timezone.now() - since < timedelta(seconds=LAUNCH_TIMEOUT_S):
            return "starting"
    import_run_dir(run, run_dir)
    run.refresh_from_db()
    if isinstance(state, local.Exited):
        return _finish_exited(run, state)
    return _finish_lost(run, state)


def backfill_if_behind(run: Run) -> bool:
    """Import the run directory when its ``metrics.jsonl`` is ahead of the run's recorded step."""
    last = last_logged_step(run.run_dir)
    if last is None or last <= run.current_step:
        return False
    import_run_dir(run, run.run_dir, live=True)  # live: a ``starting`` run with points is running
    return True


def _grace() -> int:
    return settings.OR1_CANCEL_GRACE_S


def _grace_expired(run: Run) -> bool:
    since = status_since(run, RunStatus.CANCELLING)
    return since is not None and timezone.now() - since >= timedelta(seconds=_grace())


def _finish_exited(run: Run, state: local.Exited) -> str:
    code = state.exit_code
    if code == 0:
        run.transition_to(RunStatus.SUCCEEDED, reason="the trainer finished", exit_code=0)
    elif code == EXIT_CANCELLED:
        how = "checkpointed and stopped on SIGTERM" if state.signal is None else "was stopped by SIGTERM"
        if run.status != RunStatus.CANCELLING:
            run.transition_to(RunStatus.CANCELLING, reason="the trainer received SIGTERM from outside OR1 Lab")
        run.transition_to(RunStatus.CANCELLED, reason=f"the trainer {how}", exit_code=code)
    else:
        cause = f"killed by {state.signal}" if state.signal else f"exited with code {code}"
        error = local.log_error_line(Path(run.run_dir))
        reason = f"the trainer {cause}" + (f": {error.removeprefix('error: ')}" if error else "")
        run.transition_to(RunStatus.FAILED, reason=reason + " (see trainer.log)", exit_code=code)
    return run.status


def _finish_lost(run: Run, state: local.Lost) -> str:
    run_dir = Path(run.run_dir)
    if state.leftovers:  # a trainer without its wrapper: stop it before anything starts in its directory
        local.kill(run_dir)
    if run.status == RunStatus.CANCELLING:
        run.transition_to(RunStatus.CANCELLED, reason=f"killed {_grace()}s after SIGTERM (it did not stop)")
        return run.status
    allowed = run.spec_as_launched.get("resources", {}).get("max_restarts", 0)
    lost = "its trainer process is gone without an exit status (killed, out of memory, or the host restarted)"
    if run.restarts < allowed:
        relaunch_run(run, reason=f"{lost}; relaunching with --resume ({run.restarts + 1} of {allowed})")
        return "relaunched"
    run.transition_to(RunStatus.FAILED, reason=f"{lost}; no restarts left ({run.restarts} of {allowed} used)")
    return run.status
