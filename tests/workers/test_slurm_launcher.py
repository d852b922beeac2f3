"""The Slurm launcher end to end, against the real single-node Slurm of deploy/services/slurm_up.sh.

Runs go through the platform as the editor sends them: ``launch_run`` with ``resources.launcher: slurm``, the
Celery tasks it sends taken off the broker and run in this process (``deliver``, as a worker on the Slurm
queue would), the reconciler called as beat would call it. The trainer runs as the cluster's job user
(``slurmci``), not as this process, and posts its metrics to the live test server; tests/workers/slurm_cast.py
says what that needs (a runs directory the job user writes, inputs it reads, an interpreter it can run).

Without the cluster (no env file, slurmrestd not answering) the tests skip; in CI they fail.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path

import pytest

from experiments.actions import cancel_run, create_experiment_from_spec, launch_run
from experiments.models import Checkpoint, MetricPoint, Run, RunEvent, RunStatus
from or1_train.telemetry import read_jsonl
from tests.workers.slurm_cast import *  # noqa: F403 (the cluster's fixtures)
from tests.workers.slurm_cast import GRACE_S, deliver
from workers import slurm_reconcile
from workers.processes import processes_of

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

S = RunStatus


@pytest.fixture
def slurm_spec(inputs):
    def make(cluster: str = "local", steps: int = 3, **resources) -> dict:
        return {
            "name": f"on-slurm-{uuid.uuid4().hex[:6]}",
            "model": {"path": str(inputs["model"]), "dtype": "float32"},
            "data": {"sources": [{"name": "easy", "path": str(inputs["data"])}]},
            "stages": [
                {
                    "name": "short",
                    "steps": steps,
                    "max_prompt_tokens": 96,
                    "max_response_tokens": 8,
                    "rollout_batch": 4,
                    "mini_batch": 4,
                    "group_size": 4,
                }
            ],
            "rollout": {"engine": "hf"},
            "reward": {"workers": 1},
            "evaluation": {"sets": [], "at_start": False, "every_steps": 0},
            "checkpoints": {"every_steps": 1, "keep_last": 2},
            "resources": {"launcher": "slurm", "cluster": cluster, "max_restarts": 0, **resources},
        }

    return make


def _launch(project, user, spec) -> Run:
    return launch_run(create_experiment_from_spec(project=project, user=user, spec=spec), user)


def _reload(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def _statuses(run: Run) -> list[str]:
    return [e.data["to"] for e in run.events.filter(kind=RunEvent.Kind.STATUS).order_by("at", "id")]


def _follow(run: Run, until, timeout_s: float, what: str) -> Run:
    """Reconcile (as beat does) until ``until(run)`` holds; on a timeout, show the job's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        slurm_reconcile.reconcile()
        fresh = _reload(run)
        if until(fresh):
            return fresh
        time.sleep(0.5)
    log = Path(_reload(run).run_dir) / "trainer.log"
    print(log.read_text(errors="replace")[-4000:] if log.exists() else "(no trainer.log)")
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}; run is {_reload(run).status}")


def _file_points(run_dir: Path) -> dict[tuple[str, int], float]:
    values = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return {
        (name, record["step"]): values.get(value, value)
        for record in read_jsonl(run_dir / "metrics.jsonl")
        for name, value in record["metrics"].items()
    }


def test_a_run_on_slurm_completes_with_its_metrics(
    slurm_queue, make_cluster, slurm_spec, project, alice, shared_dir
):
    make_cluster()
    run = _launch(project, alice, slurm_spec(steps=3))
    [submitted] = deliver(slurm_queue)
    assert submitted.startswith("submitted Slurm job"), submitted
    run = _follow(run, lambda r: r.is_terminal, 240, "the run to finish")

    assert run.status == S.SUCCEEDED, run.status_reason
    assert _statuses(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.SUCCEEDED]
    job = run.slurm_jobs.get()
    assert run.external_job_id == str(job.job_id) and submitted == f"submitted Slurm job {job.job_id}"
    assert (job.state, job.exit_code, job.exit_signal, job.attempt) == ("COMPLETED", 0, None, 0)
    assert job.node_list and run.host == job.node_list and job.started_at and job.ended_at
    assert f"Slurm job {job.job_id} COMPLETED on {job.node_list}" in run.status_reason and run.exit_code == 0

    run_dir = Path(run.run_dir)
    assert run_dir == shared_dir["runs"] / f"run-{run.pk}"
    assert (run_dir / "metrics.jsonl").stat().st_uid == shared_dir["uid"]  # the trainer ran as the job user
    points = {(p.name, p.step): p.value for p in MetricPoint.objects.filter(run=run)}
    assert points == _file_points(run_dir) and {s for n, s in points if n == "critic/score/mean"} == {1, 2, 3}
    assert run.current_step == 3 and Checkpoint.objects.filter(run=run).count() == 3
    log = (run_dir / "trainer.log").read_text()
    assert f"or1: Slurm job {job.job_id} on " in log and "step 3/3" in log
    assert "or1: the trainer exited with code 0" in log
    assert json.loads((run_dir / "exit_status.json").read_text())["exit_code"] == 0
    assert processes_of(str(run_dir)) == []


def test_cancel_sends_sigterm_the_trainer_checkpoints_and_no_process_is_left(
    slurm_queue, make_cluster, slurm_spec, project, alice
):
    make_cluster()
    run = _launch(project, alice, slurm_spec(steps=40))
    deliver(slurm_queue)
    run = _follow(run, lambda r: r.current_step >= 1, 180, "the first ingested step")
    trainers = processes_of(run.run_dir)
    assert trainers and run.status == S.RUNNING

    cancel_run(run, alice)
    assert _reload(run).status == S.CANCELLING
    assert deliver(slurm_queue, wait_s=5)[0] == "sent SIGTERM"
    run = _follow(run, lambda r: r.is_terminal, GRACE_S + 60, "the cancel to end the run")

    assert run.status == S.CANCELLED, run.status_reason
    assert run.exit_code == 143 and "the trainer checkpointed and stopped on SIGTERM" in run.status_reason
    assert _statuses(run) == [S.QUEUED, S.STARTING, S.RUNNING, S.CANCELLING, S.CANCELLED]
    job = run.slurm_jobs.get()
    # Slurm's own view: the job exited 143 by itself, FAILED, never CANCELLED; the run records the cancel.
    assert (job.state, job.exit_code) == ("FAILED", 143) and job.term_sent_at and job.kill_sent_at is None
    last_step = max(step for _, step in _file_points(Path(run.run_dir)))
    assert last_step < run.total_steps
    assert Checkpoint.objects.filter(run=run).order_by("-step").first().step == last_step
    deadline = time.monotonic() + 10
    while processes_of(run.run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(run.run_dir) == [], f"left running: {trainers}"


def test_a_job_that_exits_non_zero_fails_the_run_with_the_decoded_exit_code(
    slurm_queue, make_cluster, slurm_spec, project, alice
):
    cluster = make_cluster("broken", trainer_command="or1-train-is-not-installed-here")
    run = _launch(project, alice, slurm_spec(cluster="broken"))
    deliver(slurm_queue)
    run = _follow(run, lambda r: r.is_terminal, 60, "the job to fail")

    assert run.status == S.FAILED and run.exit_code == 127
    assert "the trainer exited with code 127: the trainer command was not found" in run.status_reason
    job = run.slurm_jobs.get()
    assert (job.state, job.exit_code, job.exit_signal) == ("FAILED", 127, None)
    with cluster.client() as client:  # what Slurm itself reports: the raw wait status, 127 << 8
        assert client.job(job.job_id).raw["exit_code"] == 127 << 8
    assert "or1-train-is-not-installed-here: command not found" in (Path(run.run_dir) / "trainer.log").read_text()


@pytest.mark.parametrize(
    ("resources", "slurm_says"),
    [
        ({"partition": "no-such-partition"}, "Invalid partition name specified (error 2000)"),
        ({"gpus_per_node": 3}, "Requested node configuration is not available (error 2014)"),
    ],
    ids=["invalid-partition", "three-gpus-on-a-two-gpu-node"],
)
def test_a_job_slurm_refuses_fails_the_run_with_slurms_reason(
    slurm_queue, make_cluster, slurm_spec, project, alice, resources, slurm_says
):
    make_cluster()
    run = _launch(project, alice, slurm_spec(**resources))
    assert deliver(slurm_queue) == ["failed"]
    run = _reload(run)
    assert run.status == S.FAILED and run.status_reason.startswith("Slurm cluster local refused the job")
    assert slurm_says in run.status_reason
    assert not run.slurm_jobs.exists() and run.external_job_id == ""


def test_a_bad_token_fails_the_run_with_an_authentication_error(
    slurm_queue, make_cluster, slurm_spec, project, alice, slurm_env
):
    make_cluster(token="not-a-jwt")
    run = _launch(project, alice, slurm_spec())
    assert deliver(slurm_queue) == ["failed"]
    run = _reload(run)
    user = slurm_env.get("SLURM_REST_USER", "slurmci")
    assert run.status == S.FAILED
    assert run.status_reason.startswith(f"Slurm cluster local did not accept the credentials of user {user}")
    assert "rejected the credentials" in run.status_reason and "Set a new token or key" in run.status_reason


def _running_on_a_forgotten_job(project, alice, slurm_spec, cluster, shared_dir) -> Run:
    """A run that believes job 987654321 (unknown to Slurm) is running it."""
    from experiments.actions import create_run
    from experiments.models import SlurmJob

    experiment = create_experiment_from_spec(project=project, user=alice, spec=slurm_spec())
    run = create_run(experiment, user=alice)
    run.transition_to(S.STARTING)
    run.transition_to(S.RUNNING)
    run.run_dir = cluster.run_dir_for(run)
    run.save(update_fields=["run_dir"])
    Path(run.run_dir).mkdir()
    SlurmJob.objects.create(run=run, cluster=cluster, cluster_name=str(cluster), attempt=0, job_id=987_654_321)
    return run


def test_a_job_slurm_forgot_is_judged_by_its_exit_status_file_or_fails_clearly(
    make_cluster, slurm_spec, project, alice, shared_dir
):
    cluster = make_cluster()
    recorded = _running_on_a_forgotten_job(project, alice, slurm_spec, cluster, shared_dir)
    (Path(recorded.run_dir) / "exit_status.json").write_text(json.dumps({"exit_code": 0, "signal": None}))
    lost = _running_on_a_forgotten_job(project, alice, slurm_spec, cluster, shared_dir)

    outcomes = slurm_reconcile.reconcile()
    assert outcomes == {recorded.pk: S.SUCCEEDED, lost.pk: S.FAILED}
    recorded, lost = _reload(recorded), _reload(lost)
    assert "the job's exit_status.json gave the outcome" in recorded.status_reason
    assert recorded.slurm_jobs.get().state == "COMPLETED"
    assert lost.status_reason.startswith("Slurm job 987654321 vanished: Slurm no longer knows it")
