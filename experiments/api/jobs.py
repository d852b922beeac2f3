"""Evaluation jobs and difficulty jobs: start one, follow its status, read what it produced.

Creating an evaluation job names a checkpoint you may read (its team runs the job) or an HF model path and
the team; the eval sets are that team's dataset sources. ``launcher`` says where it runs: ``local`` (a worker
host) or ``slurm`` on ``cluster``, one of the team's Slurm clusters, with ``gpus`` GPUs. ``cancel`` stops a
queued or running job (members their own, admins any; 409 once it has ended). The results land as evaluation
results (with k and the sample count) and on the leaderboard. A difficulty job samples n answers per problem of
a dataset source; ``create-source`` registers the problems solved 1..n-1 times as a new source of the team. The
work is ``experiments.jobs``: viewers get 403, another team's objects are 404 (or, named in a body, "does not exist").
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from experiments import access, jobs
from experiments.api.base import ApiViewSet, UsernameField
from experiments.api.checkpoints import EvaluationSerializer
from experiments.api.datasets import DatasetSourceSerializer
from experiments.api.filters import Filter
from experiments.api.runs import FiniteFloatField
from experiments.models import (
    Checkpoint,
    DatasetSource,
    DifficultyJob,
    EvaluationJob,
    JobStatus,
    Run,
    SlurmCluster,
    Team,
)

MODEL_HELP = "An HF model directory the workers can read (or a hub id in their cache); or give a checkpoint."


class _JobSerializer(serializers.ModelSerializer):
    created_by = UsernameField()
    temperature = FiniteFloatField(min_value=0.01, max_value=2.0, default=1.0)
    model_path = serializers.CharField(max_length=1000, required=False, allow_blank=True, help_text=MODEL_HELP)
    checkpoint = serializers.PrimaryKeyRelatedField(queryset=Checkpoint.objects.none(), required=False,
                                                    allow_null=True, help_text="A checkpoint you may read.")
    launcher = serializers.ChoiceField(choices=Run.Launcher.choices, default=Run.Launcher.LOCAL,
                                       help_text="A local worker host, or a Slurm cluster of the team.")
    cluster = serializers.PrimaryKeyRelatedField(queryset=SlurmCluster.objects.none(), required=False,
                                                 allow_null=True, help_text="The team's Slurm cluster (for slurm).")
    gpus = serializers.IntegerField(min_value=0, max_value=64, required=False, allow_null=True,
                                    help_text="GPUs to ask Slurm for, on one node; default the spec's "
                                              "rollout.tensor_parallel_size with vLLM, none with transformers.")
    common = ["id", "team", "status", "status_reason", "created_by", "created_at", "started_at", "finished_at",
              "checkpoint", "model_path", "engine", "dtype", "temperature", "launcher", "cluster", "gpus",
              "slurm_job_id", "slurm_state", "work_dir"]
    read_only = ["status", "status_reason", "created_at", "started_at", "finished_at", "slurm_job_id", "slurm_state",
                 "work_dir"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["checkpoint"].queryset = access.readable_checkpoints(request.user)
            self.fields["cluster"].queryset = SlurmCluster.objects.visible_to(request.user)
            if "team" in self.fields and not self.fields["team"].read_only:
                self.fields["team"].queryset = Team.objects.filter(pk__in=access.team_ids(request.user))


class EvaluationJobSerializer(_JobSerializer):
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.none(), required=False, allow_null=True,
        help_text="The team that runs the job; for a checkpoint, its run's team (which this must match if given).",
    )
    eval_sets = serializers.PrimaryKeyRelatedField(
        many=True, queryset=DatasetSource.objects.none(), help_text="Dataset sources of the team to evaluate on."
    )
    k = serializers.IntegerField(min_value=1, max_value=1024, help_text="avg@k and pass@k.")
    samples = serializers.IntegerField(min_value=1, max_value=1024, required=False, allow_null=True,
                                       help_text="Answers per problem (n >= k); default k.")
    max_response_tokens = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, allow_null=True,
                                                   help_text="Default: the run's last stage (32768 for a model path).")
    results = EvaluationSerializer(many=True, read_only=True)

    class Meta:
        model = EvaluationJob
        fields = [*_JobSerializer.common, "eval_sets", "k", "samples", "max_response_tokens", "results"]
        read_only_fields = _JobSerializer.read_only

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["eval_sets"].child_relation.queryset = DatasetSource.objects.visible_to(request.user)

    def validate(self, attrs):
        checkpoint, team = attrs.get("checkpoint"), attrs.get("team")
        if checkpoint is not None and team is not None and checkpoint.run.experiment.project.team_id != team.pk:
            raise serializers.ValidationError({"team": "the checkpoint's run belongs to another team"})
        return attrs


class DifficultyJobSerializer(_JobSerializer):
    team = serializers.PrimaryKeyRelatedField(read_only=True, help_text="The source's team.")
    source = serializers.PrimaryKeyRelatedField(queryset=DatasetSource.objects.none(),
                                                help_text="The dataset source whose problems are estimated.")
    n = serializers.IntegerField(min_value=2, max_value=1024, default=16,
                                 help_text="Samples per problem (OR1: 16 for math, 8 for code).")
    max_tokens = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, allow_null=True,
                                          help_text="Response tokens; default the run's last stage (else 32768).")
    limit = serializers.IntegerField(min_value=1, required=False, allow_null=True, help_text="Only the first N.")
    model_name = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                       help_text="Key under extra_info.model_difficulty; default from the model.")
    filtered_source = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = DifficultyJob
        fields = [*_JobSerializer.common, "source", "n", "max_tokens", "limit", "model_name", "histogram",
                  "num_problems", "kept", "out_path", "filtered_path", "filtered_source"]
        read_only_fields = [*_JobSerializer.read_only, "histogram", "num_problems", "kept", "out_path",
                            "filtered_path"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["source"].queryset = DatasetSource.objects.visible_to(request.user)


class FilteredSourceSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100, required=False, allow_blank=True,
                                 help_text="Default: <source>-solved-1-<n-1>-of-<n>.")


def _placement(data: dict) -> dict:
    return {"launcher": data["launcher"], "cluster": data.get("cluster"), "gpus": data.get("gpus")}


class _CancelMixin:
    conflict_actions = ("cancel",)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the job: at once while queued; a running one stops its processes (or its Slurm job) and ends
        cancelled. Members cancel their own jobs, admins any; 409 once the job has ended."""
        job = jobs.cancel_job(self.get_object(), request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=job.pk)).data)


_FILTERS = (
    Filter("team", "team_id", help="Jobs of this team."),
    Filter("status", "status", kind=str, many=True, choices=tuple(JobStatus.values), help="Any of these."),
    Filter("checkpoint", "checkpoint_id", help="Jobs on this checkpoint."),
)


class EvaluationJobViewSet(_CancelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                           ApiViewSet):
    """Evaluations of a checkpoint or an HF model on a team's eval sets; newest first."""

    serializer_class = EvaluationJobSerializer
    filters = _FILTERS
    ordering_fields = ("created_at", "finished_at", "status")
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return (EvaluationJob.objects.visible_to(self.request.user).select_related("created_by")
                .prefetch_related("eval_sets", "results"))

    @extend_schema(responses={201: EvaluationJobSerializer})
    def create(self, request, *args, **kwargs):
        """Queue an evaluation (members of the team): avg@k and pass@k from `samples` answers per problem."""
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        job = jobs.submit_evaluation(
            request.user, eval_sets=data["eval_sets"], k=data["k"], temperature=data["temperature"],
            samples=data.get("samples"), max_response_tokens=data.get("max_response_tokens"),
            checkpoint=data.get("checkpoint"), model_path=data.get("model_path", ""), team=data.get("team"),
            engine=data.get("engine", ""), dtype=data.get("dtype", ""), **_placement(data),
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=job.pk)).data, status=status.HTTP_201_CREATED)


class DifficultyJobViewSet(_CancelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                           ApiViewSet):
    """Offline difficulty estimation of a dataset source (pass counts of n samples); newest first."""

    serializer_class = DifficultyJobSerializer
    filters = (*_FILTERS, Filter("source", "source_id", help="Jobs on this dataset source."))
    ordering_fields = ("created_at", "finished_at", "status")
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return DifficultyJob.objects.visible_to(self.request.user).select_related("created_by", "source")

    @extend_schema(responses={201: DifficultyJobSerializer})
    def create(self, request, *args, **kwargs):
        """Queue `or1-train estimate-difficulty` on the source (members of its team)."""
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        job = jobs.submit_difficulty(
            request.user, source=data["source"], n=data["n"], temperature=data["temperature"],
            max_tokens=data.get("max_tokens"), limit=data.get("limit"), model_name=data.get("model_name", ""),
            checkpoint=data.get("checkpoint"), model_path=data.get("model_path", ""),
            engine=data.get("engine", ""), dtype=data.get("dtype", ""), **_placement(data),
        )
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=FilteredSourceSerializer, responses={201: DatasetSourceSerializer})
    @action(detail=True, methods=["post"], url_path="create-source")
    def create_source(self, request, pk=None):
        """Register the problems the job kept (solved 1..n-1 times) as a new dataset source of the team."""
        job = self.get_object()
        body = FilteredSourceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        source = jobs.create_filtered_source(job, request.user, body.validated_data.get("name", ""))
        return Response(DatasetSourceSerializer(source).data, status=status.HTTP_201_CREATED)
