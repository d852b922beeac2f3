"""Experiments: a named run spec in a project. Create one from a spec, or duplicate one with an edited spec.

The spec is validated by the trainer's own contract (``or1_train.spec``) in ``actions``; its errors come back
at their paths inside the body (``spec.stages[1].max_response_tokens``).
"""

from __future__ import annotations

import json

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from experiments import actions
from experiments.api.base import ApiViewSet, UsernameField
from experiments.api.errors import SpecInvalid
from experiments.api.filters import Filter
from experiments.models import Experiment, Project
from or1_train.spec import SpecError

TAG_HELP = "Runs or experiments carrying this tag."


def with_tag(queryset, tag: str, prefix: str = ""):
    """Tags are a JSON list; matching the quoted tag in its text works the same on PostgreSQL and SQLite."""
    return queryset.filter(**{f"{prefix}tags__icontains": json.dumps(tag)})


class FieldErrorItem(serializers.Serializer):
    path = serializers.CharField()
    message = serializers.CharField()


class ExperimentSerializer(serializers.ModelSerializer):
    spec = serializers.JSONField(help_text="The run spec (or1_train.spec.RunSpec) as a JSON object.")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    name = serializers.CharField(max_length=200, required=False, help_text="Default: the spec's name.")
    description = serializers.CharField(required=False, allow_blank=True)
    created_by = UsernameField()
    run_count = serializers.IntegerField(read_only=True)
    spec_errors = serializers.SerializerMethodField(help_text="Problems with the stored spec; empty when valid.")

    class Meta:
        model = Experiment
        fields = [
            "id", "project", "name", "description", "spec", "tags", "parent", "created_by", "created_at",
            "updated_at", "run_count", "spec_errors",
        ]
        read_only_fields = ["parent", "created_at", "updated_at"]
        validators = []  # the name is unique per project: create_experiment_from_spec says so at "name"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["project"].queryset = Project.objects.visible_to(request.user)

    @extend_schema(responses=FieldErrorItem(many=True))
    def get_spec_errors(self, experiment: Experiment) -> list[dict]:
        return [{"path": e.path, "message": e.message} for e in experiment.spec_errors]


class DuplicateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    spec = serializers.JSONField(required=False, help_text="An edited spec; default: the source's spec.")
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none(), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["project"].queryset = Project.objects.visible_to(request.user)


class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet):
    """Experiments of your teams' projects; members create and duplicate them."""

    serializer_class = ExperimentSerializer
    filters = (
        Filter("project", "project_id", help="Only this project's experiments."),
        Filter("team", "project__team_id", help="Only this team's experiments."),
        Filter("tag", lambda qs, tag, _: with_tag(qs, tag), kind=str, help=TAG_HELP),
        Filter("parent", "parent_id", help="Experiments duplicated from this one."),
        Filter("q", lambda qs, text, _: qs.filter(Q(name__icontains=text) | Q(description__icontains=text)),
               kind=str, help="Text in the name or description."),
    )
    ordering_fields = ("created_at", "name", "updated_at")

    def get_queryset(self):
        return (
            Experiment.objects.visible_to(self.request.user)
            .select_related("project__team", "created_by")
            .annotate(run_count=Count("runs"))
            .order_by("-created_at", "-id")  # an aggregate drops Meta.ordering; pages need a stable order
        )

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            experiment = actions.create_experiment_from_spec(
                project=data["project"],
                user=request.user,
                spec=data["spec"],
                name=data.get("name"),
                description=data.get("description"),
                tags=data.get("tags", ()),
            )
        except SpecError as exc:
            raise SpecInvalid(exc, prefix="spec") from None
        return Response(self.get_serializer(self.get_queryset().get(pk=experiment.pk)).data, status=201)

    @extend_schema(request=DuplicateSerializer, responses={201: ExperimentSerializer})
    @action(detail=True, methods=["post"])
    def duplicate(self, request, pk=None):
        """'Duplicate and edit': a new experiment from this one, perhaps with an edited spec, linked to it."""
        source = self.get_object()
        body = DuplicateSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        try:
            copy = actions.duplicate_experiment(
                source,
                user=request.user,
                name=body.validated_data["name"],
                spec=body.validated_data.get("spec"),
                project=body.validated_data.get("project"),
            )
        except SpecError as exc:
            raise SpecInvalid(exc, prefix="spec") from None
        return Response(self.get_serializer(self.get_queryset().get(pk=copy.pk)).data, status=status.HTTP_201_CREATED)
