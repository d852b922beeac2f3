"""What the Slurm client takes and gives back, independent of the slurmrestd API version.

The adapters (adapters.py) translate between these dataclasses and each version's JSON, so the
launcher deals with one `JobRequest` and one `JobInfo` whichever Slurm a cluster runs.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# A REST job inherits no environment from anything (unlike sbatch), so without PATH the batch script
# cannot even find `srun`. Used when the request does not set PATH itself.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Base job states after which the job holds no resources and its processes are gone.
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "PREEMPTED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
# Base states a job can be in before it ends (the rest of Slurm's JOB_STATE values are flags).
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "SUSPENDED"})


def is_terminal(state: str) -> bool:
    """True once Slurm has finished with the job. COMPLETING is not terminal: processes may remain."""
    return state.upper() in TERMINAL_STATES


@dataclass(frozen=True)
class JobRequest:
    """One batch job as the platform asks for it. `script` is the full bash text (scripts.py renders it)."""

    name: str
    script: str
    working_dir: str
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    memory_mb: int | None = None
    time_limit_min: int | None = None
    constraint: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    # False: Slurm must not requeue the job itself after a node failure or a preemption (it would rerun the
    # script from the start); the platform requeues the run with --resume instead. None: the cluster's default.
    requeue: bool | None = None

    def __post_init__(self):
        if not self.script.startswith("#!"):
            raise ValueError(
                "script must start with an interpreter line such as '#!/bin/bash' (Slurm requires it)"
            )
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {self.nodes}")
        if self.gpus_per_node < 0:
            raise ValueError(f"gpus_per_node must not be negative, got {self.gpus_per_node}")
        for key in self.environment:
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"invalid environment variable name {key!r}")

    def job_environment(self) -> dict[str, str]:
        """The environment the job starts with: the request's, plus a standard PATH if it set none."""
        env = {"PATH": DEFAULT_PATH}
        env.update({str(k): str(v) for k, v in self.environment.items()})
        return env


@dataclass(frozen=True)
class ExitStatus:
    """How the batch script ended: a return code, or the signal that killed it (never both)."""

    return_code: int | None
    signal: int | None = None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        """Decode a raw wait(2) status, as v0.0.38 reports `exit_code` (exit 3 -> 768, SIGTERM -> 15)."""
        if os.WIFEXITED(status):
            return cls(return_code=os.WEXITSTATUS(status))
        if os.WIFSIGNALED(status):
            return cls(return_code=None, signal=os.WTERMSIG(status))
        return cls(return_code=None)

    @property
    def ok(self) -> bool:
        return self.return_code == 0 and self.signal is None

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return _signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


@dataclass(frozen=True)
class JobInfo:
    """A job as Slurm reports it now.

    `state` is the upper-case base state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...),
    or COMPLETING while Slurm is still tearing the job down (as v0.0.38 reports it). `state_flags` holds
    the other entries of a v0.0.40+ `job_state` list: flags such as REQUEUED, or, while COMPLETING,
    the state the job is ending in (CANCELLED, ...).
    `start_time` is set once the job has started and `end_time` once it has ended (Slurm's own fields
    also hold expected times, which are dropped here). `exit` is known only for a terminal job.
    """

    job_id: int
    name: str
    state: str
    reason: str | None
    node_list: str | None
    start_time: datetime | None
    end_time: datetime | None
    exit: ExitStatus | None
    state_flags: tuple[str, ...] = ()
    partition: str | None = None
    raw: Mapping = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        return is_terminal(self.state)


@dataclass(frozen=True)
class ControllerPing:
    hostname: str
    responding: bool
    mode: str | None = None


@dataclass(frozen=True)
class PingResult:
    """slurmrestd answered; `ok` when at least one slurmctld behind it responds."""

    controllers: tuple[ControllerPing, ...]
    slurm_release: str | None
    api_version: str

    @property
    def ok(self) -> bool:
        return any(c.responding for c in self.controllers)
