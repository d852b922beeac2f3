"""slurmrestd client and job scripts for running OR1 training on a Slurm cluster (no Django here).

    from workers.slurm import SlurmClient, JobRequest, JobScriptSpec, render_job_script, output_paths

    client = SlurmClient("http://127.0.0.1:6820", "v0.0.38", "slurmci", jwt_key="/path/jwt_hs256.key")
    stdout, stderr = output_paths(run_dir)
    script = render_job_script(JobScriptSpec(run_dir, ["run", "spec.yaml", "--out", run_dir]))
    job_id = client.submit(JobRequest("run-42", script, run_dir, stdout=stdout, stderr=stderr))
    client.job(job_id)                      # JobInfo, or None once Slurm has forgotten it
    client.cancel_then_kill(job_id, 120)    # SIGTERM (checkpoint), SIGKILL after the grace

See docs/slurm.md.
"""

from .adapters import SUPPORTED_VERSIONS, SlurmAdapter, V0038Adapter, V0040Adapter, adapter_for
from .client import SlurmClient
from .errors import (
    SlurmAuthError,
    SlurmError,
    SlurmJobNotFound,
    SlurmSubmitRejected,
    SlurmUnavailable,
)
from .models import TERMINAL_STATES, ExitStatus, JobInfo, JobRequest, PingResult, is_terminal
from .scripts import JobScriptSpec, master_port, output_paths, render_job_script

__all__ = [
    "SUPPORTED_VERSIONS",
    "TERMINAL_STATES",
    "ExitStatus",
    "JobInfo",
    "JobRequest",
    "JobScriptSpec",
    "PingResult",
    "SlurmAdapter",
    "SlurmAuthError",
    "SlurmClient",
    "SlurmError",
    "SlurmJobNotFound",
    "SlurmSubmitRejected",
    "SlurmUnavailable",
    "V0038Adapter",
    "V0040Adapter",
    "adapter_for",
    "is_terminal",
    "master_port",
    "output_paths",
    "render_job_script",
]
