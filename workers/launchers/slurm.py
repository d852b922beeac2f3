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


def env_setup(cluster: SlurmCluster) -> str:
    """What every job of ``cluster`` runs before the trainer: the umask, then the cluster's template."""
    template = cluster.job_template.strip()
    return f"{UMASK_LINE}\n{template}" if template else UMASK_LINE


def script_spec(run: Run, cluster: SlurmCluster, run_dir: str, *, resume: bool) -> JobScriptSpec:
    resources = run.spec_as_launched.get("resources", {})
    return JobScriptSpec(
        run_dir=run_dir,
        trainer_args=trainer_args(run_dir, resume=resume),
        nodes=resources.get("nodes") or 1,
        gpus_per_node=resources.get("gpus_per_node") or 0,
        cpus_per_task=resources.get("cpus_per_task"),
        env_setup=env_setup(cluster),
        job_name=job_name(run),
        trainer_command=cluster.trainer_argv(),
        log_file=LOG_FILE,
        exit_status_file=EXIT_STATUS_FILE,
    )


def job_request(
    run: Run, cluster: SlurmCluster, run_dir: str, *, resume: bool, ingest_url: str, token: str
) -> JobRequest:
    """The REST request for one attempt of ``run`` on ``cluster`` (resources from the frozen spec)."""
    environment = {"OR1_INGEST_URL": ingest_url, "OR1_INGEST_TOKEN": token, "OR1_RUN_ID": str(run.pk)}
    script = script_spec(run, cluster, run_dir, resume=resume)
    return request(cluster, script, run.spec_as_launched.get("resources", {}), environment)


def request(cluster: SlurmCluster, script: JobScriptSpec, resources: dict, environment: dict[str, str]) -> JobRequest:
    """The REST request that runs ``script`` in its directory: the resources a spec's ``resources`` section
    asks for, the cluster's partition, account and QoS where it names none, and ``environment`` (a REST job
    inherits nothing else)."""
    directory = script.run_dir
    stdout, stderr = output_paths(directory)
    memory_gb = resources.get("memory_gb")
    return JobRequest(
        name=script.job_name,
        script=render_job_script(script),
        working_dir=directory,
        partition=resources.get("partition") or cluster.partition or None,
        account=resources.get("account") or cluster.account or None,
        qos=resources.get("qos") or cluster.qos or None,
        nodes=script.nodes,
        gpus_per_node=script.gpus_per_node,
        cpus_per_task=script.cpus_per_task,
        memory_mb=memory_gb * 1024 if memory_gb else None,
        time_limit_min=resources.get("time_limit_minutes"),
        constraint=resources.get("constraint") or None,
        stdout=stdout,
        stderr=stderr,
        environment={**environment, "PYTHONUNBUFFERED": "1"},
        requeue=False,
    )


def prepare_run_dir(run_dir: Path, spec: dict, *, resume: bool) -> None:
    """Create the run directory for the job user (group-writable) and write the frozen spec into it.

    A relaunch (``resume``) keeps the spec the run started with, next to its checkpoints.
    """
    make_job_dir(run_dir)
    spec_file = run_dir / SPEC_FILE
    if not resume or not spec_file.exists():
        write_job_file(spec_file, yaml.safe_dump(spec, sort_keys=False))
    (run_dir / EXIT_STATUS_FILE).unlink(missing_ok=True)  # a new attempt: the last one's outcome is history


def make_job_dir(directory: Path) -> None:
    """A directory the job user writes through the group (setgid: what is made in it keeps its group)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, RUN_DIR_MODE)


def write_job_file(path: Path, text: str) -> None:
    """A file the platform writes for the job user to read (and the trainer may rewrite)."""
    path.write_text(text)
    os.chmod(path, RUN_FILE_MODE)


def exit_status(run_dir: Path) -> dict | None:
    """What the job script recorded when the trainer ended (None: not ended, or not visible from here)."""
    try:
        status = json.loads((run_dir / EXIT_STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and isinstance(status.get("exit_code"), int) else None
