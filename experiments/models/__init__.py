"""The experiments app's models, one module per concept."""

from experiments.models.checkpoints import Checkpoint
from experiments.models.datasets import DatasetMix, DatasetMixEntry, DatasetSource
from experiments.models.evaluations import EvaluationResult
from experiments.models.experiments import Experiment
from experiments.models.metrics import MetricPoint
from experiments.models.runs import InvalidTransition, Run, RunEvent, RunStatus, StageRecord
from experiments.models.sweeps import Sweep
from experiments.models.teams import Membership, Project, Team

__all__ = [
    "Checkpoint",
    "DatasetMix",
    "DatasetMixEntry",
    "DatasetSource",
    "EvaluationResult",
    "Experiment",
    "InvalidTransition",
    "Membership",
    "MetricPoint",
    "Project",
    "Run",
    "RunEvent",
    "RunStatus",
    "StageRecord",
    "Sweep",
    "Team",
]
