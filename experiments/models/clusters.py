"""Slurm clusters as data, per team, and the Slurm jobs of runs launched on them.

A ``SlurmCluster`` is what an operator registers in the admin: where slurmrestd listens and which API version
it speaks, the Slurm user the jobs run as and that user's credentials, the defaults a job gets (partition,
account, QoS), the cluster's environment activation (a job template, inserted into every batch script), the
trainer command, and the runs directory on the cluster's shared filesystem. A run's spec names its cluster
(``resources.cluster``); the name is looked up in the run's team.

Credentials are one of: a fixed JWT (``scontrol token``), the cluster's HS256 key (short tokens are minted
from it, see ``workers/slurm/tokens.py``), or the path of that key file on the worker hosts. The token and the
key are stored encrypted (``experiments/secrets.py``) and never shown back; the admin says "set" or "not set".

A ``SlurmJob`` is one attempt of a run on Slurm: the job id and what Slurm last said about it (state, reason,
node list, exit), kept because Slurm forgets a finished job ``MinJobAge`` seconds after it ends. A run that is
requeued after a preemption or a node failure gets a new job (``attempt`` = the run's ``restarts`` then).
"""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from experiments.models.runs import Run
from experiments.models.teams import Team, TeamScopedQuerySet
from experiments.secrets import decrypt, encrypt
from workers.slurm.adapters import SUPPORTED_VERSIONS
from workers.slurm.models import ExitStatus, JobInfo, is_terminal


class SlurmCluster(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="slurm_clusters")
    name = models.CharField(
        max_length=100, help_text="What a run spec's resources.cluster says to use this cluster."
    )
    rest_url = models.URLField("slurmrestd URL", help_text="e.g. http://slurm-head:6820 (no path).")
    api_version = models.CharField(
        "API version",
        max_length=16,
        choices=[(v, v) for v in SUPPORTED_VERSIONS],
        default=SUPPORTED_VERSIONS[0],
        help_text="The OpenAPI plugin slurmrestd was started with: v0.0.38 for Slurm 22.05, v0.0.40 for "
        "23.11, v0.0.41 for 24.05, v0.0.42 for 24.11.",
    )
    user = models.CharField(
        "Slurm user name",
        max_length=100,
        help_text="Jobs run as this user: it must exist on the nodes and write the runs directory.",
    )
    token_encrypted = models.TextField(blank=True, editable=False)
    jwt_key_encrypted = models.TextField(blank=True, editable=False)
    jwt_key_file = models.CharField(
        "JWT key file",
        max_length=500,
        blank=True,
        help_text="Instead of a stored token or key: the path of the cluster's jwt_hs256.key on every worker "
        "host (readable by the worker's account only).",
    )
    token_lifespan_s = models.PositiveIntegerField(
        "minted token lifespan (s)", default=3600, help_text="For tokens minted from the key."
    )
    partition = models.CharField(max_length=100, blank=True, help_text="Default partition (spec overrides).")
    account = models.CharField(max_length=100, blank=True, help_text="Default account (spec overrides).")
    qos = models.CharField("QoS", max_length=100, blank=True, help_text="Default QoS (spec overrides).")
    job_template = models.TextField(
        blank=True,
        help_text="Shell lines that prepare the environment before the trainer starts, e.g. "
        "'module load cuda/12.4' and 'source /shared/or1/.venv/bin/activate'. Inserted verbatim.",
    )
    trainer_command = models.CharField(
        max_length=500,
        default="or1-train",
        help_text="How the trainer is started on a node, before 'run SPEC --out DIR': 'or1-train', "
        "'python -m or1_train', 'apptainer exec /shared/or1.sif or1-train'.",
    )
    runs_dir = models.CharField(
        "runs directory",
        max_length=500,
        help_text="On the cluster's shared filesystem, mounted at the same path on the worker and web hosts; "
        "each run gets run-<id> in it.",
    )
    ingest_url = models.URLField(
        "ingestion URL",
        blank=True,
        help_text="How the compute nodes reach OR1 Lab (default: OR1_PUBLIC_URL).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="slurmcluster_unique_team_name")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    # ------------------------------------------------------------------ credentials

    @property
    def credentials(self) -> str | None:
        """Which credentials are set: "token", "key", "key file", or None."""
        if self.token_encrypted:
            return "token"
        if self.jwt_key_encrypted:
            return "key"
        if self.jwt_key_file:
            return "key file"
        return None

    def set_token(self, token: str) -> None:
        """Store a fixed JWT (replacing any key) and save; ``scontrol token``'s ``SLURM_JWT=`` is removed."""
        token = token.strip().removeprefix("SLURM_JWT=")
        if not token:
            raise ValueError("the token is empty")
        self.token_encrypted, self.jwt_key_encrypted, self.jwt_key_file = encrypt(token.encode()), "", ""
        if self.pk:
            self.save(update_fields=["token_encrypted", "jwt_key_encrypted", "jwt_key_file", "updated_at"])

    def set_jwt_key(self, key: bytes) -> None:
        """Store the cluster's HS256 key (replacing any token); tokens are then minted per client."""
        if not key:
            raise ValueError("the key is empty")
        self.token_encrypted, self.jwt_key_encrypted, self.jwt_key_file = "", encrypt(key), ""
        if self.pk:
            self.save(update_fields=["token_encrypted", "jwt_key_encrypted", "jwt_key_file", "updated_at"])

    def client(self, token: str | None = None, timeout: float = 10):
        """A ``workers.slurm.SlurmClient`` with the stored credentials (or with ``token``, to try a new one)."""
        from workers.slurm import SlurmClient

        if token is not None:
            credentials: dict = {"token": token}
        elif self.token_encrypted:
            credentials = {"token": decrypt(self.token_encrypted).decode()}
        elif self.jwt_key_encrypted:
            credentials = {"jwt_key": decrypt(self.jwt_key_encrypted), "token_lifespan_s": self.token_lifespan_s}
        elif self.jwt_key_file:
            credentials = {"jwt_key": self.jwt_key_file, "token_lifespan_s": self.token_lifespan_s}
        else:
            raise ValueError(f"Slurm cluster {self} has no token or key: set one in the admin")
        return SlurmClient(self.rest_url, self.api_version, self.user, timeout=timeout, **credentials)

    # ------------------------------------------------------------------ rules and paths

    def clean(self) -> None:
        errors = {}
        if self.runs_dir and not PurePosixPath(self.runs_dir).is_absolute():
            errors["runs_dir"] = "must be an absolute path on the cluster's shared filesystem"
        if self.jwt_key_file and not PurePosixPath(self.jwt_key_file).is_absolute():
            errors["jwt_key_file"] = "must be an absolute path"
        try:
            if not shlex.split(self.trainer_command or ""):
                errors["trainer_command"] = "is required"
        except ValueError as exc:
            errors["trainer_command"] = f"is not a valid command line: {exc}"
        if "\0" in (self.job_template or ""):
            errors["job_template"] = "contains a NUL byte"
        if errors:
            raise ValidationError(errors)

    def run_dir_for(self, run: Run) -> str:
        return str(PurePosixPath(self.runs_dir) / f"run-{run.pk}")

    def trainer_argv(self) -> list[str]:
        return shlex.split(self.trainer_command)


class SlurmJob(models.Model):
    """One Slurm job of a run, with Slurm's last word on it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="slurm_jobs")
    cluster = models.ForeignKey(
        SlurmCluster, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    cluster_name = models.CharField(max_length=200, help_text="The cluster as it was called at submission.")
    attempt = models.PositiveIntegerField(help_text="The run's restarts when this job was submitted.")
    job_id = models.PositiveBigIntegerField()
    state = models.CharField(max_length=32, default="PENDING")
    reason = models.CharField(max_length=200, blank=True)
    node_list = models.CharField(max_length=1000, blank=True)
    exit_code = models.IntegerField(null=True, blank=True, help_text="The batch script's return code.")
    exit_signal = models.IntegerField(null=True, blank=True, help_text="The signal that killed it, if one did.")
    submitted_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="When Slurm last answered for it.")
    term_sent_at = models.DateTimeField(null=True, blank=True, help_text="SIGTERM sent (a cancel).")
    kill_sent_at = models.DateTimeField(null=True, blank=True, help_text="SIGKILL sent (the grace ran out).")
    last_error = models.TextField(blank=True, help_text="The last failure to ask Slurm about the job.")

    class Meta:
        ordering = ["-attempt", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "attempt"], name="slurmjob_unique_run_attempt")]

    def __str__(self) -> str:
        return f"Slurm job {self.job_id} on {self.cluster_name} ({self.state})"

    @property
    def terminal(self) -> bool:
        return is_terminal(self.state)

    @property
    def exit(self) -> ExitStatus | None:
        if self.exit_code is None and self.exit_signal is None:
            return None
        return ExitStatus(self.exit_code, self.exit_signal)

    def record(self, info: JobInfo, now: datetime | None = None) -> None:
        """Store what Slurm just said about the job."""
        self.state = info.state
        self.reason = (info.reason or "")[:200]
        self.node_list = info.node_list or self.node_list
        self.started_at = info.start_time or self.started_at
        self.ended_at = info.end_time or self.ended_at
        if info.exit is not None:
            self.exit_code, self.exit_signal = info.exit.return_code, info.exit.signal
        self.last_seen_at = now or timezone.now()
        self.last_error = ""
        self.save()

    def as_info(self) -> JobInfo:
        """The stored facts in the client's shape (for a job Slurm has forgotten)."""
        return JobInfo(
            job_id=self.job_id,
            name=f"or1-run-{self.run_id}",
            state=self.state,
            reason=self.reason or None,
            node_list=self.node_list or None,
            start_time=self.started_at,
            end_time=self.ended_at,
            exit=self.exit if self.terminal else None,
        )
