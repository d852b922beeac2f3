"""The local launcher end to end: a real Celery worker (Redis broker, beat), PostgreSQL, the real trainer.

One worker serves the module. Each test launches a tiny run through ``launch_run``, as the editor does, and
checks the Run row, the ingested points against the run directory's files, and the processes themselves by
PID. Beat runs the reconciler every second, so finishing, cancelling and restarting happen as in production.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
from pathlib import Path

import pytest

from experiments.actions import cancel_run, create_experiment_from_spec, launch_run, resume_run
from experiments.models import AuditEntry, Checkpoint, EvaluationResult, MetricPoint, Run, RunEvent, RunStatus
from or1_train.telemetry import read_jsonl
from workers.processes import kill_processes_of, processes_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

S = RunStatus


@pytest.fixture(autouse=True)
def no_trainer_outlives_its_test(live_worker):
    """A failed test must not leave its trainer posting into the next test's (flushed) database."""
    yield
    kill_processes_of(str(live_worker.runs_dir))


def _experiment(project, user, spec):
    return create_experiment_from_spec(project=project, user=user, spec=spec)


def _reload(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def _statuses(run: Run) -> list[str]:
    return [e.data["to"] for e in run.events.filter(kind=RunEvent.Kind.STATUS).order_by("at", "id")]


def _finished(run: Run, timeout: float, worker, wait_for) -> Run:
    def done():
        fresh = _reload(run)
        return fresh if fresh.is_terminal else None

    try:
        return wait_for(done, timeout, f"run {run.pk} to finish")
    except pytest.fail.Exception:
        log = Path(run.run_dir) / "trainer.log"
        print(log.read_text(errors="replace")[-4000:] if log.exists() else "(no trainer.log)")
        print(worker.log_text()[-4000:])
        raise


def _file_points(run_dir: Path) -> dict[tuple[str, int], float]:
    values = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return {
        (name, record["step"]): values.get(value, value)
        for record in read_jsonl(run_dir / "metrics.jsonl")
        for name, value in record["metrics"].items()
    }


def _db_points(run: Run) -> dict[tuple[str, int], float]:
    return {(p.name, p.step): p.value for p in MetricPoint.objects.filter(run=run)}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _assert_no_process_left(wait_for, run: Run, *pids: int) -> None:
    # The wrapper is adopted by PID 1, which reaps it a moment after it exits.
    for pid in pids:
        wait_for(lambda pid=pid: _gone(pid), 15, f"process {pid} of run {run.pk} to be gone")
    assert processes_of(run.run_dir) == []


def test_a_launched_run_goes_from_queued_to_succeeded_with_its_metrics(
    live_worker, project, alice, worker_spec, wait_for
):
    experiment = _experiment(project, alice, worker_spec(steps=(3, 3), evaluate=True))
    run = launch_run(experiment, alice)
    assert run.status == S.QUEUED and run.environment["packages"]["torch"]

    run = _finished(run, 240, live_worker, wait_for)
    assert run.status == S.SUCCEEDED, run.status_reason
    assert _statuses(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED]
    assert run.exit_code == 0 and run.current_step == 6 and run.current_stage == 1
    assert run.host == socket.gethostname() and run.pid and run.external_job_id
    assert run.environment["worker_queue"] == live_worker.queue and run.ingest_token_hash

    run_dir = Path(run.run_dir)
    assert run_dir.parent == live_worker.runs_dir
    assert "step 6/6" in (run_dir / "trainer.log").read_text()
    # Every point the trainer wrote reached the platform with its value, and nothing else did.
    file_points = _file_points(run_dir)
    assert _db_points(run) == file_points
    assert sorted(step for name, step in file_points if name == "critic/score/mean") == [1, 2, 3, 4, 5, 6]

    stages = list(run.stages.order_by("index"))
    assert all(s.started_at and s.ended_at for s in stages) and stages[0].ended_at <= stages[1].started_at
    assert set(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == {1, 2, 3, 4, 5, 6}
    final = Checkpoint.objects.get(run=run, step=6)
    assert final.stage == 1 and final.size_bytes > 0 and final.manifest["step"] == 6
    evaluation = EvaluationResult.objects.get(run=run)
    assert (evaluation.benchmark, evaluation.k, evaluation.num_samples, evaluation.step) == ("arith", 2, 16, 6)
    assert evaluation.checkpoint == final
    exit_status = json.loads((run_dir / "exit_status.json").read_text())
    assert exit_status["exit_code"] == 0
    _assert_no_process_left(wait_for, run, run.pid, exit_status["trainer_pid"])


def test_cancel_checkpoints_stops_and_leaves_no_process(live_worker, project, alice, worker_spec, wait_for):
    run = launch_run(_experiment(project, alice, worker_spec(steps=(40, 40))), alice)
    wait_for(lambda: _reload(run).current_step >= 1, 180, "the first ingested step")
    running = _reload(run)
    assert running.status == S.RUNNING

    cancel_run(running, alice)
    assert _reload(run).status == S.CANCELLING
    run = _finished(run, live_worker.grace_s + 60, live_worker, wait_for)
    assert run.status == S.CANCELLED, run.status_reason
    assert run.exit_code == 143 and "checkpointed and stopped on SIGTERM" in run.status_reason
    assert _statuses(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.CANCELLING, S.CANCELLED]

    # It saved where it stopped, and the platform registered that checkpoint.
    last_step = max(step for _, step in _file_points(Path(run.run_dir)))
    assert last_step < run.total_steps
    newest = Checkpoint.objects.filter(run=run).order_by("-step").first()
    assert newest.step == last_step and (Path(newest.path) / "manifest.json").exists()
    exit_status = json.loads((Path(run.run_dir) / "exit_status.json").read_text())
    assert exit_status["exit_code"] == 143 and exit_status["signal"] is None
    _assert_no_process_left(wait_for, run, run.pid, exit_status["trainer_pid"])


def test_a_killed_trainer_is_relaunched_from_its_checkpoint_with_continuous_metrics(
    live_worker, project, alice, worker_spec, wait_for
):
    run = launch_run(_experiment(project, alice, worker_spec(steps=(4, 4), max_restarts=1)), alice)
    wait_for(
        lambda: _reload(run).current_step >= 2 and Checkpoint.objects.filter(run=run).exists(),
        180,
        "two ingested steps and a checkpoint",
    )
    first = _reload(run)
    os.killpg(first.pid, signal.SIGKILL)  # the wrapper's group: wrapper and trainer, no exit status written

    run = _finished(run, 300, live_worker, wait_for)
    assert run.status == S.SUCCEEDED, run.status_reason
    assert run.restarts == 1 and run.pid != first.pid
    assert _statuses(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED]
    relaunch = run.events.filter(kind=RunEvent.Kind.STATUS, data__to=S.QUEUED).order_by("-at").first()
    assert "relaunching with --resume (1 of 1)" in relaunch.message

    resumed = run.events.get(data__kind="resume")
    assert 1 <= resumed.data["step"] <= first.current_step + 1
    # Continuous: every step once, in the file and in the database, with the same values.
    records = [r for r in read_jsonl(Path(run.run_dir) / "metrics.jsonl") if "critic/score/mean" in r["metrics"]]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert _db_points(run) == _file_points(Path(run.run_dir))
    steps = MetricPoint.objects.filter(run=run, name="critic/score/mean").values_list("step", flat=True)
    assert sorted(steps) == list(range(1, 9))
    assert "--resume" in (Path(run.run_dir) / "trainer.log").read_text()
    _assert_no_process_left(wait_for, run, first.pid, run.pid)


def test_a_cancelled_run_resumed_from_its_checkpoint_succeeds_with_every_step_once(
    live_worker, project, alice, worker_spec, wait_for
):
    """Cancel (SIGTERM: the trainer checkpoints and exits 143), then Resume: the same run goes back to the
    queue, its host starts the trainer with --resume, and it ends succeeded with steps 1..N each once."""
    run = launch_run(_experiment(project, alice, worker_spec(steps=(6, 6))), alice)
    running = wait_for(
        lambda: (fresh := _reload(run)).status == S.RUNNING and Checkpoint.objects.filter(run=run).exists() and fresh,
        180,
        "the run running with a registered checkpoint",
    )
    cancel_run(running, alice)
    cancelled = _finished(run, live_worker.grace_s + 60, live_worker, wait_for)
    assert (cancelled.status, cancelled.exit_code) == (S.CANCELLED, 143), cancelled.status_reason
    stopped_at = Checkpoint.objects.filter(run=run).order_by("-step").values_list("step", flat=True).first()
    assert stopped_at < run.total_steps

    resume_run(cancelled, alice)
    assert (_reload(run).status, _reload(run).finished_at) == (S.QUEUED, None)
    run = _finished(run, 240, live_worker, wait_for)
    assert (run.status, run.exit_code, run.restarts) == (S.SUCCEEDED, 0, 1), run.status_reason
    assert _statuses(run) == [
        S.QUEUED, S.STARTING, S.RUNNING, S.CANCELLING, S.CANCELLED, S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED
    ]
    requeued = run.events.filter(kind=RunEvent.Kind.STATUS, data__to=S.QUEUED).order_by("-at", "-id").first()
    assert requeued.data["reason"] == f"resumed by alice from checkpoint step {stopped_at}"
    assert AuditEntry.objects.get(action=AuditEntry.Action.RESUME).detail == {"checkpoint_step": stopped_at}
    assert run.events.get(data__kind="resume").data["step"] == stopped_at  # the trainer's own word

    run_dir = Path(run.run_dir)
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "critic/score/mean" in r["metrics"]]
    assert [r["step"] for r in records] == list(range(1, 13))
    assert _db_points(run) == _file_points(run_dir)
    steps = MetricPoint.objects.filter(run=run, name="critic/score/mean").values_list("step", flat=True)
    assert sorted(steps) == list(range(1, 13))
    assert f"run {run.pk} launch 2 (--resume)" in (run_dir / "trainer.log").read_text()
    exit_status = json.loads((run_dir / "exit_status.json").read_text())
    assert exit_status["exit_code"] == 0
    _assert_no_process_left(wait_for, run, run.pid, exit_status["trainer_pid"])


def test_a_run_outlives_a_killed_worker_and_the_next_worker_takes_it_over(
    live_worker, project, alice, worker_spec, wait_for
):
    """Trainers are detached from the worker: SIGKILLing the worker (and its pool) loses nothing, and the
    restarted worker's reconciler follows the same process to the end. (Last in the module: it restarts the
    shared worker.)"""
    run = launch_run(_experiment(project, alice, worker_spec(steps=(3, 3))), alice)
    wait_for(lambda: _reload(run).current_step >= 1, 180, "the first ingested step")
    pid = _reload(run).pid
    live_worker.kill()
    assert not _gone(pid) and _reload(run).status == S.RUNNING
    live_worker.start()

    run = _finished(run, 240, live_worker, wait_for)
    assert run.status == S.SUCCEEDED, run.status_reason
    assert (run.restarts, run.pid) == (0, pid)
    assert _statuses(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED]
    steps = MetricPoint.objects.filter(run=run, name="critic/score/mean").values_list("step", flat=True)
    assert sorted(steps) == list(range(1, 7))
