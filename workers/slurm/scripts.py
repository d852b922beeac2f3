"""The bash batch script of a training run on Slurm.

The REST request (adapters.py) carries the resources, so the script only prepares the environment and
starts the trainer; its #SBATCH lines repeat the resources for a person reading it. Two layouts:

- one process (one node, at most one GPU): `exec` the trainer command, so the trainer *is* the batch
  process and receives Slurm's SIGTERM (cancel, time limit) directly and can checkpoint;
- otherwise: `exec srun` one torchrun launcher per node, rendezvous (c10d) at the allocation's first
  host on a port derived from the job id. srun forwards signals to the launchers, which forward them
  to the ranks; Slurm also signals every process of the job itself, so a rank may see SIGTERM twice.

Every value that comes from a run (directory, arguments, name) is shell-quoted; only the cluster's
environment template is inserted verbatim, since an administrator writes it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

# MASTER_PORT = base + job_id % span: 20000-31999, below Linux's ephemeral range (32768-60999), so an
# outgoing connection on the first host cannot already hold it; distinct for 12000 consecutive job ids.
MASTER_PORT_BASE = 20000
MASTER_PORT_SPAN = 12000


def master_port(job_id: int) -> int:
    """The rendezvous port the script computes for `job_id` (the same formula, for tests and logs)."""
    return MASTER_PORT_BASE + job_id % MASTER_PORT_SPAN


def output_paths(run_dir: str) -> tuple[str, str]:
    """(stdout, stderr) paths in the run directory for the REST request's standard_output/standard_error.

    Slurm expands %-patterns (%j = job id) in these paths, so a literal '%' in the directory is written
    '%%'; a backslash anywhere turns all expansion off, and then the names carry no job id.
    """
    if "\\" in run_dir:
        return f"{run_dir}/slurm.out", f"{run_dir}/slurm.err"
    escaped = run_dir.rstrip("/").replace("%", "%%") or "/"
    return f"{escaped}/slurm-%j.out", f"{escaped}/slurm-%j.err"


@dataclass(frozen=True)
class JobScriptSpec:
    """What the script needs to know about a run.

    `trainer_args` follow the trainer's entry point, e.g. ("run", "spec.yaml", "--out", run_dir,
    "--resume"). A single process runs `trainer_command + trainer_args`; a distributed run runs
    `torchrun ... -m trainer_module + trainer_args` on every node. `procs_per_node` defaults to one
    per GPU. `env_setup` is the cluster's template (`source .../activate`, `module load ...`).

    `log_file` (a name in the run directory): everything the script and the trainer print, the template's
    output included, is appended there, so a relaunch adds to the same log. `exit_status_file` (a name in
    the run directory): the trainer (or srun) runs as a child of the script instead of replacing it, and
    the script writes `{"exit_code": N, ...}` there when it ends, so the outcome is known after Slurm has
    forgotten the job; SIGTERM to the script is forwarded to the child.
    """

    run_dir: str
    trainer_args: Sequence[str]
    nodes: int = 1
    gpus_per_node: int = 0
    procs_per_node: int | None = None
    cpus_per_task: int | None = None
    env_setup: str = ""
    job_name: str | None = None
    trainer_command: Sequence[str] = ("or1-train",)
    trainer_module: str = "or1_train.cli"
    torchrun: str = "torchrun"
    log_file: str | None = None
    exit_status_file: str | None = None

    def __post_init__(self):
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {self.nodes}")
        if self.procs_per_node is not None and self.procs_per_node < 1:
            raise ValueError(f"procs_per_node must be at least 1, got {self.procs_per_node}")
        if not self.run_dir:
            raise ValueError("run_dir is required")
        if "\0" in self.env_setup:
            raise ValueError("env_setup contains a NUL byte")
        for name in (self.log_file, self.exit_status_file):
            if name is not None and (not name or "/" in name or name in (".", "..")):
                raise ValueError(f"{name!r} must be a file name in the run directory")

    @property
    def nprocs_per_node(self) -> int:
        return self.procs_per_node or max(1, self.gpus_per_node)

    @property
    def distributed(self) -> bool:
        return self.nodes > 1 or self.nprocs_per_node > 1


def _comment_safe(value: str) -> str:
    """A value for a comment line: a newline there would end the comment and start a command."""
    return "".join(c if c.isprintable() else "?" for c in value)


def _join(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _supervised(command: str, exit_status_file: str) -> list[str]:
    """Run `command` as a child, forward SIGTERM to it, and record how it ended before exiting the same way.

    `wait` returns early when the trap runs, so it is repeated until the child is gone; bash keeps the
    status of a reaped child, so the last `wait` gives the child's own code. Writing the file is best
    effort: failing to write it must not turn a trainer's success into a failed job.
    """
    tmp, final = shlex.quote(f".{exit_status_file}.tmp"), shlex.quote(exit_status_file)
    record = '{"exit_code": %d, "signal": null, "slurm_job_id": "%s", "finished_at": %s}\\n'
    return [
        "# The trainer runs as a child so that this script can record how it ended. Slurm's SIGTERM (a",
        "# cancel, the time limit) reaches it directly and is forwarded once more: the trainer tolerates both.",
        "child=",
        """trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi' TERM""",
        f"{command} &",
        "child=$!",
        "code=0",
        "while :; do",
        '  wait "$child" && code=0 || code=$?',
        '  kill -0 "$child" 2>/dev/null || break',
        "done",
        'wait "$child" && code=0 || code=$?',
        'echo "or1: the trainer exited with code $code" >&2',
        f"{{ printf '{record}' \\",
        f'    "$code" "${{SLURM_JOB_ID:-}}" "$(date +%s)" > {tmp} && mv -f {tmp} {final}; }} \\',
        f'  || echo "or1: could not write {_comment_safe(exit_status_file)}" >&2',
        'exit "$code"',
    ]


def render_job_script(spec: JobScriptSpec) -> str:
    """The complete batch script (bash) for `spec`."""
    lines = [
        "#!/bin/bash",
        "# OR1 Lab training job, rendered by workers.slurm.scripts. The REST request sets the resources;",
        "# the #SBATCH lines below only repeat them for a reader.",
    ]
    if spec.job_name:
        lines.append(f"#SBATCH --job-name={shlex.quote(_comment_safe(spec.job_name))}")
    lines.append(f"#SBATCH --nodes={spec.nodes}")
    if spec.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{spec.gpus_per_node}")
    if spec.cpus_per_task:
        lines.append(f"#SBATCH --cpus-per-task={spec.cpus_per_task}")
    lines += ["set -euo pipefail", ""]
    if spec.log_file:
        log = f"{spec.run_dir.rstrip('/')}/{spec.log_file}"
        lines += [f"exec >>{shlex.quote(log)} 2>&1", ""]

    if spec.env_setup.strip():
        # Activation scripts and `module load` often read unset variables; -u is off while they run.
        lines += ["# environment (cluster template)", "set +u", spec.env_setup.rstrip("\n"), "set -u", ""]

    lines += [
        f"cd -- {shlex.quote(spec.run_dir)}",
        'echo "or1: Slurm job $SLURM_JOB_ID on $(hostname)" >&2',
        "",
    ]

    if not spec.distributed:
        command = _join([*spec.trainer_command, *spec.trainer_args])
        if spec.exit_status_file:
            lines += _supervised(command, spec.exit_status_file)
        else:
            lines.append(f"exec {command}")
        return "\n".join(lines) + "\n"

    srun = ["srun", '--nodes="$SLURM_NNODES"', "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    if spec.cpus_per_task:
        # srun in 22.05+ does not take --cpus-per-task over from the allocation.
        srun.append(f"--cpus-per-task={spec.cpus_per_task}")
    torchrun = [
        shlex.quote(spec.torchrun),
        '--nnodes "$SLURM_NNODES"',
        f"--nproc-per-node {spec.nprocs_per_node}",
        '--rdzv-id "$SLURM_JOB_ID"',
        "--rdzv-backend c10d",
        '--rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT"',
        f"-m {shlex.quote(spec.trainer_module)}",
    ]
    if spec.trainer_args:
        torchrun.append(_join(spec.trainer_args))
    lines += [
        "# Rendezvous at the allocation's first host. (The whole list is read before taking its first",
        "# line: `| head -n1` could end scontrol with SIGPIPE, which pipefail turns into a failed job.)",
        'hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        "MASTER_ADDR=${hosts%%$'\\n'*}",
        f"MASTER_PORT=$(( {MASTER_PORT_BASE} + SLURM_JOB_ID % {MASTER_PORT_SPAN} ))",
        "export MASTER_ADDR MASTER_PORT",
        "",
    ]
    launch = f"{' '.join(srun)} \\\n  {' '.join(torchrun)}"
    lines += _supervised(launch, spec.exit_status_file) if spec.exit_status_file else [f"exec {launch}"]
    return "\n".join(lines) + "\n"
