"""The experiments app's models, one module per concept."""

from experiments.models.alerts import RunAlert
from experiments.models.audit import AuditEntry
from experiments.models.checkpoints import Checkpoint
from experiments.models.clusters import SlurmCluster, SlurmJob
from experiments.models.dashboards import MetricTile, SavedView, TileState
from experiments.models.datasets import DatasetMix, DatasetMixEntry, DatasetSource
from experiments.models.evaluations import EvaluationResult
from experiments.models.experiments import Experiment
from experiments.models.jobs import DifficultyJob, EvaluationJob, JobStatus
from experiments.models.metrics import MetricPoint
from experiments.models.retention import RetentionPolicy
from experiments.models.runs import InvalidTransition, Run, RunEvent, RunStatus, StageRecord
from experiments.models.sharing import Share
from experiments.models.sweeps import Sweep, SweepPoint
from experiments.models.teams import Membership, Project, Team
from experiments.models.tokens import ApiToken

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Checkpoint",
    "DatasetMix",
    "DatasetMixEntry",
    "DatasetSource",
    "DifficultyJob",
    "EvaluationJob",
    "EvaluationResult",
    "Experiment",
    "InvalidTransition",
    "JobStatus",
    "Membership",
    "MetricPoint",
    "MetricTile",
    "Project",
    "RetentionPolicy",
    "Run",
    "RunAlert",
    "RunEvent",
    "RunStatus",
    "SavedView",
    "Share",
    "SlurmCluster",
    "SlurmJob",
    "StageRecord",
    "Sweep",
    "SweepPoint",
    "Team",
    "TileState",
]
