"""The Slurm launcher without a cluster: the job a run's resources render, and how each job state lands on the run.

The job request and its script are checked as text (a two-node job cannot run on the one-node test cluster)
and with ``bash -n``. The state mapping feeds ``slurm_reconcile.follow`` the ``JobInfo`` a client returns for
each of Slurm's states, including those the local cluster cannot produce on demand (PREEMPTED, NODE_FAIL,
TIMEOUT, OUT_OF_MEMORY), and checks the Run row it leaves.
"""

from __future__ import annotations

import itertools
import subprocess
from datetime import UTC, datetime

import pytest

from experiments.actions import create_experiment_from_spec, create_run
from experiments.models import Run, RunStatus, SlurmCluster, SlurmJob
from workers import slurm_reconcile
from workers.launchers import slurm as launcher
from workers.slurm import ExitStatus, JobInfo, V0038Adapter, V0040Adapter

pytestmark = pytest.mark.django_db

S = RunStatus
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def cluster(team) -> SlurmCluster:
    cluster = SlurmCluster(
        team=team,
        name="hpc",
        rest_url="http://slurm-head:6820",
        user="or1",
        partition="gpu",
        account="proj-a",
        job_template="module load cuda/12.4\nsource /shared/or1/.venv/bin/activate",
        trainer_command="or1-train",
        runs_dir="/shared/or1/runs",
    )
    cluster.set_token("a-token")
    cluster.save()
    return cluster


@pytest.fixture
def slurm_run(project, alice, spec_data, cluster):
    names = itertools.count(1)

    def make(status: str = S.RUNNING, **resources) -> Run:
        resources = {"launcher": "slurm", "cluster": "hpc", **resources}
        spec = spec_data | {"name": f"run-{next(names)}", "resources": resources}
        run = create_run(create_experiment_from_spec(project=project, user=alice, spec=spec), user=alice)
        for step in {S.STARTING: [S.STARTING], S.RUNNING: [S.STARTING, S.RUNNING]}.get(status, []):
            run.transition_to(step)
        if status == S.CANCELLING:
            run.transition_to(S.STARTING)
            run.transition_to(S.RUNNING)
            run.transition_to(S.CANCELLING)
        return run

    return make


def test_a_two_node_job_renders_srun_and_torchrun_with_the_allocation_rendezvous(slurm_run, cluster):
    resources = {"nodes": 2, "gpus_per_node": 4, "cpus_per_task": 16, "memory_gb": 64, "time_limit_minutes": 120}
    run = slurm_run(**resources, qos="high", constraint="a100")
    run_dir = cluster.run_dir_for(run)
    request = launcher.job_request(run, cluster, run_dir, resume=True, ingest_url="http://or1/api/ingest/runs/1",
                                   token="secret")  # fmt: skip

    assert request.name == f"or1-run-{run.pk}" and request.working_dir == run_dir == f"/shared/or1/runs/run-{run.pk}"
    assert (request.partition, request.account, request.qos, request.constraint) == ("gpu", "proj-a", "high", "a100")
    assert (request.nodes, request.gpus_per_node, request.cpus_per_task) == (2, 4, 16)
    assert (request.memory_mb, request.time_limit_min, request.requeue) == (64 * 1024, 120, False)
    assert request.stdout == f"{run_dir}/slurm-%j.out" and request.stderr == f"{run_dir}/slurm-%j.err"
    assert request.environment["OR1_INGEST_URL"] == "http://or1/api/ingest/runs/1"
    assert request.environment["OR1_INGEST_TOKEN"] == "secret" and "PATH" in request.job_environment()

    script = request.script
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash" and "#SBATCH --nodes=2" in lines and "#SBATCH --gres=gpu:4" in lines
    assert lines.index(f"exec >>{run_dir}/trainer.log 2>&1") < lines.index("umask 0002")
    assert lines.index("module load cuda/12.4") < lines.index("source /shared/or1/.venv/bin/activate")
    assert lines.index("source /shared/or1/.venv/bin/activate") < lines.index(f"cd -- {run_dir}")
    assert 'hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST")' in lines
    assert "MASTER_ADDR=${hosts%%$'\\n'*}" in lines and "MASTER_PORT=$(( 20000 + SLURM_JOB_ID % 12000 ))" in lines
    assert (
        'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 --cpus-per-task=16 \\\n'
        '  torchrun --nnodes "$SLURM_NNODES" --nproc-per-node 4 --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d '
        '--rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" '
        f"-m or1_train.cli run {run_dir}/spec.yaml --out {run_dir} --resume &\n"
    ) in script
    assert "mv -f .exit_status.json.tmp exit_status.json" in script and lines[-1] == 'exit "$code"'
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)

    v38 = V0038Adapter().submit_body(request)
    assert v38["script"] == script and v38["job"]["nodes"] == 2 and v38["job"]["gres"] == "gpu:4"
    assert (v38["job"]["memory_per_node"], v38["job"]["time_limit"], v38["job"]["requeue"]) == (65536, 120, False)
    assert v38["job"]["environment"]["OR1_INGEST_TOKEN"] == "secret"
    v40 = V0040Adapter("v0.0.41").submit_body(request)["job"]
    assert (v40["nodes"], v40["tres_per_node"], v40["requeue"]) == ("2", "gres/gpu:4", False)
    assert "OR1_INGEST_TOKEN=secret" in v40["environment"]


def test_a_one_process_job_starts_the_clusters_trainer_command(slurm_run, cluster):
    cluster.trainer_command = "apptainer exec /shared/or1.sif or1-train"
    run = slurm_run(gpus_per_node=1)
    run_dir = cluster.run_dir_for(run)
    script = launcher.job_request(run, cluster, run_dir, resume=False, ingest_url="u", token="t").script
    assert f"apptainer exec /shared/or1.sif or1-train run {run_dir}/spec.yaml --out {run_dir} &" in script
    assert "srun" not in script and "--resume" not in script and "#SBATCH --gres=gpu:1" in script


def test_the_run_directory_is_the_job_users_through_the_group(tmp_path, spec_data):
    run_dir = tmp_path / "runs" / "run-1"
    launcher.prepare_run_dir(run_dir, spec_data, resume=False)
    assert run_dir.stat().st_mode & 0o7777 == 0o2770
    assert (run_dir / "spec.yaml").stat().st_mode & 0o777 == 0o660
    (run_dir / "spec.yaml").write_text("kept: on resume\n")
    (run_dir / "exit_status.json").write_text('{"exit_code": 1}')
    launcher.prepare_run_dir(run_dir, spec_data, resume=True)
    assert (run_dir / "spec.yaml").read_text() == "kept: on resume\n"
    assert not (run_dir / "exit_status.json").exists()  # the new attempt's outcome is not known yet


def _job(run: Run, cluster: SlurmCluster, **fields) -> SlurmJob:
    return SlurmJob.objects.create(
        run=run, cluster=cluster, cluster_name=str(cluster), attempt=run.restarts, job_id=7, **fields
    )


def _info(state: str, *, code: int | None = None, sig: int | None = None, reason: str | None = None) -> JobInfo:
    ended = state not in ("PENDING", "RUNNING", "COMPLETING")
    return JobInfo(
        job_id=7,
        name="or1-run",
        state=state,
        reason=reason,
        node_list=None if state == "PENDING" else "gpu[01-02]",
        start_time=None if state == "PENDING" else NOW,
        end_time=NOW if ended else None,
        exit=ExitStatus(code, sig) if ended else None,
    )


def _follow(run: Run, job: SlurmJob, info: JobInfo) -> Run:
    job.record(info)
    slurm_reconcile.follow(run, job, info)
    return Run.objects.get(pk=run.pk)


def test_pending_keeps_the_run_starting_with_slurms_reason_in_words(slurm_run, cluster):
    run = slurm_run(S.STARTING)
    job = _job(run, cluster)
    run = _follow(run, job, _info("PENDING", reason="Resources"))
    assert run.status == S.STARTING
    assert run.status_reason == (
        "pending in Slurm as job 7 (Resources: waiting for resources: the nodes it needs are busy)"
    )
    run = _follow(run, job, _info("PENDING", reason="Priority"))
    assert run.status_reason.endswith("(Priority: waiting behind jobs of higher priority)")
    run = _follow(run, job, _info("RUNNING"))
    assert (run.status, run.host) == (S.RUNNING, "gpu[01-02]")
    assert run.status_reason == "running on gpu[01-02] as Slurm job 7"
    assert SlurmJob.objects.get(pk=job.pk).node_list == "gpu[01-02]"


@pytest.mark.parametrize(
    ("state", "code", "sig", "log", "status", "exit_code", "reason"),
    [
        ("COMPLETED", 0, None, "", S.SUCCEEDED, 0, "the trainer finished (Slurm job 7 COMPLETED on gpu[01-02])"),
        ("FAILED", 1, None, "error: the model directory is missing\n", S.FAILED, 1,
         "the trainer exited with code 1: the model directory is missing (Slurm job 7 FAILED on gpu[01-02]; "
         "see trainer.log)"),
        ("FAILED", 137, None, "", S.FAILED, 137, "the trainer exited with code 137 (killed by SIGKILL)"),
        ("FAILED", None, 11, "", S.FAILED, 139, "the trainer exited with code 139 (killed by SIGSEGV)"),
        ("TIMEOUT", None, 15, "", S.FAILED, 143,
         "it reached its time limit of 30 minutes (Slurm job 7 TIMEOUT on gpu[01-02]); its checkpoints are kept"),
        ("OUT_OF_MEMORY", 0, None, "", S.FAILED, 0, "it ran out of memory (8 GB per node)"),
        ("FAILED", 143, None, "", S.CANCELLED, 143, "the trainer checkpointed and stopped on SIGTERM"),
        ("CANCELLED", None, 9, "", S.CANCELLED, 137, "cancelled (Slurm job 7 CANCELLED on gpu[01-02])"),
    ],
    ids=["completed", "failed", "exit-137", "segfault", "timeout", "oom", "sigterm-outside", "scancel-outside"],
)  # fmt: skip
def test_each_terminal_state_of_a_running_job(
    slurm_run, cluster, tmp_path, state, code, sig, log, status, exit_code, reason
):
    run = slurm_run(time_limit_minutes=30, memory_gb=8)
    job = _job(run, cluster)
    if log:  # the run directory is visible here: the trainer's own error line is part of the reason
        run.run_dir = str(tmp_path)
        (tmp_path / "trainer.log").write_text(f"step 1/5\n{log}")
        run.save(update_fields=["run_dir"])
    run = _follow(run, job, _info(state, code=code, sig=sig))
    assert run.status == status and run.exit_code == exit_code and reason in run.status_reason, run.status_reason
    if status == S.CANCELLED:  # not cancelled by OR1 Lab: the run says so on the way
        assert "outside OR1 Lab" in run.events.get(data__to=S.CANCELLING).message


def test_a_cancelled_run_ends_cancelled_whatever_the_jobs_final_state(slurm_run, cluster):
    checkpointed = slurm_run(S.CANCELLING)
    job = _job(checkpointed, cluster, term_sent_at=NOW)
    checkpointed = _follow(checkpointed, job, _info("FAILED", code=143))
    assert checkpointed.status == S.CANCELLED and checkpointed.status_reason.startswith(
        "the trainer checkpointed and stopped on SIGTERM (Slurm job 7 FAILED"
    )
    stubborn = slurm_run(S.CANCELLING)
    job = _job(stubborn, cluster, term_sent_at=NOW, kill_sent_at=NOW)
    stubborn = _follow(stubborn, job, _info("CANCELLED", sig=9))
    assert stubborn.status == S.CANCELLED and "killed 30s after SIGTERM (it did not stop)" in stubborn.status_reason
    finished_first = slurm_run(S.CANCELLING)
    finished_first = _follow(finished_first, _job(finished_first, cluster), _info("COMPLETED", code=0))
    assert finished_first.status == S.SUCCEEDED
    assert finished_first.status_reason.startswith("the trainer finished before the cancel reached it")


@pytest.mark.parametrize("state", ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"])
def test_preemption_and_node_failure_requeue_the_run_with_resume_until_the_restarts_run_out(
    slurm_run, cluster, state
):
    run = slurm_run(max_restarts=1)
    run = _follow(run, _job(run, cluster), _info(state, sig=9))
    assert (run.status, run.restarts) == (S.QUEUED, 1)
    assert run.status_reason == f"Slurm job 7 {state} on gpu[01-02]; requeued with --resume (1 of 1)"

    run.transition_to(S.STARTING)
    run.transition_to(S.RUNNING)
    second = _job(run, cluster)
    assert second.attempt == 1
    run = _follow(run, second, _info(state, sig=9))
    assert run.status == S.FAILED and run.status_reason.endswith("no restarts left (1 of 1 used)")
