"""Batch scripts rendered for single-process and multi-node runs, checked as text and run by bash.

The live tests (test_slurm_live.py) run rendered scripts on the local Slurm cluster as well.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from workers.slurm import JobScriptSpec, master_port, output_paths, render_job_script
from workers.slurm.scripts import MASTER_PORT_BASE, MASTER_PORT_SPAN

PRINT_ARGV = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd()}))"


def _bash_syntax_ok(script: str) -> None:
    result = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_single_process_execs_the_trainer():
    run_dir = "/runs/r 1"
    script = render_job_script(
        JobScriptSpec(
            run_dir=run_dir,
            trainer_args=["run", "spec.yaml", "--out", run_dir, "--resume"],
            gpus_per_node=1,
            env_setup="source /opt/or1/.venv/bin/activate\nmodule load cuda/12.4\n",
            job_name="run 1",
        )
    )
    _bash_syntax_ok(script)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "set -euo pipefail" in lines
    assert "#SBATCH --job-name='run 1'" in lines and "#SBATCH --gres=gpu:1" in lines
    # The template runs after `set -u` is lifted and before the trainer, verbatim.
    i = lines.index("source /opt/or1/.venv/bin/activate")
    assert lines[i - 1] == "set +u" and lines[i + 1] == "module load cuda/12.4" and lines[i + 2] == "set -u"
    assert "cd -- '/runs/r 1'" in lines
    assert lines[-1] == "exec or1-train run spec.yaml --out '/runs/r 1' --resume"
    assert "srun" not in script and "torchrun" not in script


def test_two_node_script_starts_one_torchrun_per_node():
    run_dir = "/scratch/or1/runs/exp 3/run 12"
    spec = JobScriptSpec(
        run_dir=run_dir,
        trainer_args=["run", "spec.yaml", "--out", run_dir],
        nodes=2,
        gpus_per_node=8,
        cpus_per_task=32,
        env_setup="module load cuda",
    )
    script = render_job_script(spec)
    _bash_syntax_ok(script)
    lines = script.splitlines()
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --gres=gpu:8" in lines
    assert 'hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST")' in lines
    assert "MASTER_ADDR=${hosts%%$'\\n'*}" in lines
    assert f"MASTER_PORT=$(( {MASTER_PORT_BASE} + SLURM_JOB_ID % {MASTER_PORT_SPAN} ))" in lines
    assert "export MASTER_ADDR MASTER_PORT" in lines
    srun_line = next(line for line in lines if "srun" in line)
    assert srun_line == (
        'exec srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 --cpus-per-task=32 \\'
    )
    launcher = lines[lines.index(srun_line) + 1].strip()
    assert launcher == (
        'torchrun --nnodes "$SLURM_NNODES" --nproc-per-node 8 --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d '
        '--rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" -m or1_train.cli '
        "run spec.yaml --out '/scratch/or1/runs/exp 3/run 12'"
    )
    # The rendezvous variables are set before the launch line uses them.
    assert lines.index("export MASTER_ADDR MASTER_PORT") < lines.index(srun_line)
    assert spec.distributed and spec.nprocs_per_node == 8


def test_master_addr_is_the_first_host_of_the_node_list():
    """The script's parameter expansion on scontrol's one-host-per-line output gives the first host."""
    lines = render_job_script(JobScriptSpec("/r", ["run"], nodes=2)).splitlines()
    expansion = next(line for line in lines if line.startswith("MASTER_ADDR="))
    out = subprocess.run(
        ["bash", "-c", f"hosts=$'gpu01\\ngpu02\\ngpu03'; {expansion}; printf %s \"$MASTER_ADDR\""],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "gpu01"


def test_distributed_when_one_node_has_several_processes():
    spec = JobScriptSpec("/r", ["run"], gpus_per_node=2)
    assert spec.distributed
    assert "--nproc-per-node 2" in render_job_script(spec)
    assert not JobScriptSpec("/r", ["run"], gpus_per_node=1).distributed
    assert JobScriptSpec("/r", ["run"], gpus_per_node=1, procs_per_node=4).nprocs_per_node == 4


def test_hostile_names_and_paths_are_quoted(tmp_path):
    """A run directory and arguments full of shell syntax reach the trainer verbatim and run nothing."""
    run_dir = tmp_path / 'alice\'s run "7" $(touch PWNED) `touch PWNED2`; touch PWNED3 %j'
    run_dir.mkdir()
    args = ["run", "spec $(touch PWNED4).yaml", "--out", str(run_dir), "it's; `id`"]
    script = render_job_script(
        JobScriptSpec(
            run_dir=str(run_dir),
            trainer_args=args,
            job_name="evil\nrm -rf /tmp/x #",
            trainer_command=[sys.executable, "-c", PRINT_ARGV],
        )
    )
    _bash_syntax_ok(script)
    assert (
        "#SBATCH --job-name='evil?rm -rf /tmp/x #'" in script.splitlines()
    )  # the newline cannot end the comment
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SLURM_JOB_ID": "7"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"argv": args, "cwd": str(run_dir)}
    assert not list(tmp_path.rglob("PWNED*"))


def test_output_paths_escape_slurm_patterns():
    assert output_paths("/runs/r1") == ("/runs/r1/slurm-%j.out", "/runs/r1/slurm-%j.err")
    assert output_paths("/runs/100%/") == ("/runs/100%%/slurm-%j.out", "/runs/100%%/slurm-%j.err")
    # With a backslash Slurm expands nothing, so %j would stay literal: the names carry no job id.
    assert output_paths("/runs/a\\b") == ("/runs/a\\b/slurm.out", "/runs/a\\b/slurm.err")


def test_master_port_is_deterministic_and_below_the_ephemeral_range():
    assert master_port(1) == master_port(1) == MASTER_PORT_BASE + 1
    assert master_port(MASTER_PORT_SPAN + 5) == master_port(5)
    ports = {master_port(j) for j in range(100_000, 100_000 + MASTER_PORT_SPAN)}
    assert len(ports) == MASTER_PORT_SPAN and max(ports) < 32768 and min(ports) >= 1024


def test_script_computes_the_same_port_as_master_port():
    line = next(
        line
        for line in render_job_script(JobScriptSpec("/r", ["run"], nodes=2)).splitlines()
        if "MASTER_PORT=" in line
    )
    for job_id in (1, 11999, 12000, 987654):
        out = subprocess.run(
            ["bash", "-c", f"SLURM_JOB_ID={job_id}; {line}; echo $MASTER_PORT"],
            capture_output=True,
            text=True,
        )
        assert int(out.stdout) == master_port(job_id)


@pytest.mark.parametrize("field", ["nodes", "procs_per_node"])
def test_invalid_counts_are_rejected(field):
    with pytest.raises(ValueError, match=field):
        JobScriptSpec("/r", ["run"], **{field: 0})


def test_trainer_module_and_torchrun_are_quoted():
    script = render_job_script(
        JobScriptSpec(
            "/r", ["run"], nodes=2, torchrun="/opt/my env/bin/torchrun", trainer_module="or1_train.cli"
        )
    )
    assert shlex.quote("/opt/my env/bin/torchrun") + " --nnodes" in script
