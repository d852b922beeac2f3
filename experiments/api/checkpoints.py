"""The checkpoint registry and evaluation results.

Checkpoints list with step, stage, eval scores and the HF-format path; ``manifest`` and ``files/<path>``
download what the manifest lists, for anyone who may read the checkpoint (its team, a team it or its run
was shared with). Evaluation results: avg@k and pass@k, always with k, the sample count and temperature.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from experiments import access, registry
from experiments.api.base import ApiViewSet
from experiments.api.filters import Filter
from experiments.api.runs import FiniteFloatField
from experiments.models import Checkpoint, EvaluationResult


class ScoreSerializer(serializers.Serializer):
    benchmark = serializers.CharField()
    k = serializers.IntegerField()
    avg_at_k = FiniteFloatField(allow_null=True)
    pass_at_k = FiniteFloatField(allow_null=True)
    num_samples = serializers.IntegerField()
    temperature = FiniteFloatField(allow_null=True)


class FileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)


class CheckpointSerializer(serializers.ModelSerializer):
    experiment = serializers.IntegerField(source="run.experiment_id", read_only=True)
    experiment_name = serializers.CharField(source="run.experiment.name", read_only=True)
    project = serializers.IntegerField(source="run.experiment.project_id", read_only=True)
    hf_path = serializers.SerializerMethodField(help_text="The HF-format model directory.")
    scores = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = Checkpoint
        fields = [
            "id", "run", "experiment", "experiment_name", "project", "step", "stage", "path", "hf_path",
            "size_bytes", "created_at", "scores", "files",
        ]
        read_only_fields = fields

    def get_hf_path(self, checkpoint) -> str:
        return registry.hf_path(checkpoint)

    @extend_schema(responses=ScoreSerializer(many=True))
    def get_scores(self, checkpoint) -> list[dict]:
        return ScoreSerializer(registry.scores(checkpoint), many=True).data

    @extend_schema(responses=FileSerializer(many=True))
    def get_files(self, checkpoint) -> list[dict]:
        return registry.listed_files(checkpoint)


FILE_PATH = OpenApiParameter(
    "file_path", OpenApiTypes.STR, OpenApiParameter.PATH, description="A path the manifest lists."
)


class CheckpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Checkpoints you may read: your teams', and those shared with them (directly or with their run)."""

    serializer_class = CheckpointSerializer
    filters = (
        Filter("run", "run_id", help="Checkpoints of this run."),
        Filter("experiment", "run__experiment_id", help="Checkpoints of this experiment's runs."),
        Filter("project", "run__experiment__project_id", help="The project's registry."),
        Filter("stage", "stage", help="Checkpoints saved in this stage."),
    )
    ordering_fields = ("created_at", "step", "size_bytes")
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return registry.with_scores(access.readable_checkpoints(self.request.user))

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def manifest(self, request, pk=None):
        """The checkpoint's manifest.json as the trainer wrote it (files with sizes and sha256)."""
        return Response(self.get_object().manifest)


class CheckpointFileView(generics.GenericAPIView):
    """``/checkpoints/<id>/files/<path>``: outside the router, so that a file path keeps no trailing slash."""

    def get_queryset(self):
        return access.readable_checkpoints(self.request.user)

    @extend_schema(
        operation_id="checkpoints_files_retrieve",
        parameters=[FILE_PATH],
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, "The file's bytes.")},
    )
    def get(self, request, pk: int, file_path: str):
        """Download one file the manifest lists (weights, tokenizer, optimizer and trainer state)."""
        found = registry.resolve_file(self.get_object(), file_path)
        if found is None:
            raise NotFound(f"the checkpoint has no file {file_path!r}")
        return FileResponse(found.open("rb"), as_attachment=True, filename=found.name)


class EvaluationSerializer(serializers.ModelSerializer):
    avg_at_k = FiniteFloatField(allow_null=True)
    pass_at_k = FiniteFloatField(allow_null=True)
    temperature = FiniteFloatField(allow_null=True)

    class Meta:
        model = EvaluationResult
        fields = [
            "id", "run", "checkpoint", "job", "model_path", "benchmark", "k", "num_samples", "avg_at_k", "pass_at_k",
            "temperature", "step", "created_at",
        ]
        read_only_fields = fields


class EvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """avg@k and pass@k per benchmark, of runs and checkpoints you may read and of your teams' evaluation jobs."""

    serializer_class = EvaluationSerializer
    filters = (
        Filter("run", "run_id", help="Results of this run."),
        Filter("checkpoint", "checkpoint_id", help="Results of this checkpoint."),
        Filter("job", "job_id", help="Results of this evaluation job."),
        Filter("experiment", "run__experiment_id", help="Results of this experiment's runs."),
        Filter("sweep", "run__sweep_id", help="Results of this sweep's runs."),
        Filter("benchmark", "benchmark", kind=str, help="One benchmark."),
    )
    ordering_fields = ("created_at", "step", "avg_at_k", "pass_at_k", "benchmark")
    ordering = ("run_id", "benchmark", "step", "id")

    def get_queryset(self):
        user = self.request.user
        runs = access.readable_runs(user).values("pk")
        checkpoints = access.readable_checkpoints(user).values("pk")
        return EvaluationResult.objects.filter(
            Q(run_id__in=runs) | Q(checkpoint_id__in=checkpoints) | Q(job__team_id__in=access.team_ids(user))
        )
