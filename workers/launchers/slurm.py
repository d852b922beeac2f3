"""The Slurm launcher: a run as a batch job submitted through slurmrestd, on a registered ``SlurmCluster``.

``prepare_run_dir`` creates ``<cluster runs dir>/run-<id>`` on the cluster's shared filesystem and writes the
frozen spec into it; ``job_request`` turns the run's resources and the cluster's settings into the REST
request and its batch script (``workers.slurm.render_job_script``):

    resources        nodes, gpus_per_node (gres gpu:N), cpus_per_task, memory_gb, time_limit_minutes,
                     partition / account / qos (the cluster's defaults when the spec sets none), constraint
    environment      OR1_INGEST_URL / OR1_INGEST_TOKEN (the trainer's sink posts its metrics there), and
                     nothing of the worker's own: a REST job inherits no environment
    script           ``umask 0002`` (the platform's account, in the runs directory's group, can prune what
                     the job writes), the cluster's job template, then ``<trainer command> run SPEC --out DIR
                     [--resume]`` on one node, or ``srun`` + ``torchrun`` with the rendezvous at the
                     allocation's first host on several (or with several GPUs on one)
    output           everything the job prints is appended to ``DIR/trainer.log`` (what the run page
                     tails); Slurm's own messages go to ``DIR/slurm-<job id>.out`` / ``.err``; the script
                     writes ``DIR/exit_status.json`` when the trainer ends
    requeue          off: after a node failure or a preemption the platform requeues the run with --resume

Nothing here changes the Run row: ``workers/slurm_lifecycle.py`` and ``workers/slurm_reconcile.py`` decide
what a submission or a job state means for the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from experiments.models import Run, SlurmCluster
from workers.launchers.local import LOG_FILE, SPEC_FILE
from workers.slurm import JobRequest, JobScriptSpec, output_paths, render_job_script
from workers.wrapper import EXIT_STATUS_FILE

#: the run directory: the job user writes it through the group (setgid: files keep the runs dir's group)
RUN_DIR_MODE = 0o2770
#: files the platform writes there: the trainer rewrites its spec file (normalised) when it starts
RUN_FILE_MODE = 0o660
#: first line of every job's environment setup, before the cluster's template
UMASK_LINE = "umask 0002"


def job_name(run: Run) -> str:
    return f"or1-run-{run.pk}"


def trainer_args(run_dir: str, *, resume: bool) -> list[str]:
    return ["run", f"{run_dir}/{SPEC_FILE}", "--out", run_dir] + (["--resume"] if resume else [])


def script_spec(run: Run, cluster: SlurmCluster, run_dir: str, *, resume: bool) -> JobScriptSpec:
    resources = run.spec_as_launched.get("resources", {})
    template = cluster.job_template.strip()
    return JobScriptSpec(
        run_dir=run_dir,
        trainer_args=trainer_args(run_dir, resume=resume),
        nodes=resources.get("nodes") or 1,
        gpus_per_node=resources.get("gpus_per_node") or 0,
        cpus_per_task=resources.get("cpus_per_task"),
        env_setup=f"{UMASK_LINE}\n{template}" if template else UMASK_LINE,
        job_name=job_name(run),
        trainer_command=cluster.trainer_argv(),
        log_file=LOG_FILE,
        exit_status_file=EXIT_STATUS_FILE,
    )


def job_request(
    run: Run, cluster: SlurmCluster, run_dir: str, *, resume: bool, ingest_url: str, token: str
) -> JobRequest:
    """The REST request for one attempt of ``run`` on ``cluster`` (resources from the frozen spec)."""
    resources = run.spec_as_launched.get("resources", {})
    stdout, stderr = output_paths(run_dir)
    memory_gb = resources.get("memory_gb")
    return JobRequest(
        name=job_name(run),
        script=render_job_script(script_spec(run, cluster, run_dir, resume=resume)),
        working_dir=run_dir,
        partition=resources.get("partition") or cluster.partition or None,
        account=resources.get("account") or cluster.account or None,
        qos=resources.get("qos") or cluster.qos or None,
        nodes=resources.get("nodes") or 1,
        gpus_per_node=resources.get("gpus_per_node") or 0,
        cpus_per_task=resources.get("cpus_per_task"),
        memory_mb=memory_gb * 1024 if memory_gb else None,
        time_limit_min=resources.get("time_limit_minutes"),
        constraint=resources.get("constraint") or None,
        stdout=stdout,
        stderr=stderr,
        environment={
            "OR1_INGEST_URL": ingest_url,
            "OR1_INGEST_TOKEN": token,
            "OR1_RUN_ID": str(run.pk),
            "PYTHONUNBUFFERED": "1",
        },
        requeue=False,
    )


def prepare_run_dir(run_dir: Path, spec: dict, *, resume: bool) -> None:
    """Create the run directory for the job user (group-writable) and write the frozen spec into it.

    A relaunch (``resume``) keeps the spec the run started with, next to its checkpoints.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, RUN_DIR_MODE)
    spec_file = run_dir / SPEC_FILE
    if not resume or not spec_file.exists():
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        os.chmod(spec_file, RUN_FILE_MODE)
    (run_dir / EXIT_STATUS_FILE).unlink(missing_ok=True)  # a new attempt: the last one's outcome is history


def exit_status(run_dir: Path) -> dict | None:
    """What the job script recorded when the trainer ended (None: not ended, or not visible from here)."""
    try:
        status = json.loads((run_dir / EXIT_STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and isinstance(status.get("exit_code"), int) else None
