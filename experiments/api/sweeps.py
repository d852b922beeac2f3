"""Sweeps: create one over spec field paths, follow its points, cancel it, and read the best score per
configuration (``results``). The expansion and the launching are ``experiments.sweeps``.
"""

from __future__ import annotations

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from experiments import sweeps
from experiments.api.base import ApiViewSet, UsernameField
from experiments.api.errors import SpecInvalid
from experiments.api.experiments import FieldErrorItem
from experiments.api.filters import Filter
from experiments.models import Experiment, Run, Sweep, SweepPoint
from or1_train.spec import SpecError

SPACE_HELP = (
    'Spec field paths and their values: {"grid": {"entropy.target": [0.1, 0.2]}, "random": {"loss.clip_high": '
    '{"uniform": [0.2, 0.3]}}}; random distributions: uniform, log_uniform, int_uniform [low, high], choice [...]'
)


class PointSerializer(serializers.ModelSerializer):
    errors = FieldErrorItem(many=True, read_only=True)
    run_status = serializers.CharField(source="run.status", read_only=True, allow_null=True, default=None)

    class Meta:
        model = SweepPoint
        fields = ["index", "configuration", "overrides", "state", "errors", "reason", "run", "run_status"]
        read_only_fields = fields


class SweepSerializer(serializers.ModelSerializer):
    space = serializers.JSONField(help_text=SPACE_HELP)
    created_by = UsernameField()
    project = serializers.IntegerField(source="project_id", read_only=True)
    counts = serializers.SerializerMethodField(help_text="Points per state.")
    comparison_url = serializers.SerializerMethodField(help_text="The comparison dashboard, grouped by swept fields.")
    launcher = serializers.ChoiceField(
        choices=Run.Launcher.choices, required=False, help_text="Default: the base experiment's resources.launcher."
    )

    class Meta:
        model = Sweep
        fields = [
            "id", "project", "base_experiment", "name", "space", "seeds", "samples", "sample_seed", "concurrency",
            "launcher", "status", "status_reason", "created_by", "created_at", "counts", "comparison_url",
        ]
        read_only_fields = ["status", "status_reason", "created_at"]
        extra_kwargs = {
            "seeds": {"min_value": 1, "max_value": 100},
            "samples": {"min_value": 1, "max_value": 1000},
            "concurrency": {"min_value": 1, "max_value": 1000},
            "sample_seed": {"min_value": -(2**31), "max_value": 2**31 - 1},
        }
        validators = []  # the name is unique per project: create_sweep says so at "name"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and "base_experiment" in self.fields:
            self.fields["base_experiment"].queryset = Experiment.objects.visible_to(request.user)

    def get_counts(self, sweep: Sweep) -> dict[str, int]:
        return {state: getattr(sweep, f"n_{state}", 0) for state in SweepPoint.State.values}

    def get_comparison_url(self, sweep: Sweep) -> str:
        return sweeps.comparison_url(sweep)


class SweepDetailSerializer(SweepSerializer):
    points = PointSerializer(many=True, read_only=True)

    class Meta(SweepSerializer.Meta):
        fields = [*SweepSerializer.Meta.fields, "points"]


class ConfigurationSerializer(serializers.Serializer):
    configuration = serializers.IntegerField()
    overrides = serializers.DictField(help_text="The swept fields' values (the seed only when it is swept).")
    runs = serializers.ListField(child=serializers.IntegerField())
    states = serializers.ListField(child=serializers.CharField())
    best = serializers.DictField(
        child=serializers.DictField(),
        help_text="benchmark -> {mean, max, runs}: each run's best avg@k, averaged and maximised over seeds.",
    )


class SweepViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet):
    """Sweeps of your teams' projects; members create them and cancel their own, admins any."""

    filters = (
        Filter("project", "project_id", help="Sweeps of this project."),
        Filter("base_experiment", "base_experiment_id", help="Sweeps of this experiment."),
        Filter("status", "status", kind=str, many=True, choices=tuple(Sweep.Status.values), help="Any of these."),
    )
    ordering_fields = ("created_at", "name", "status")

    def get_queryset(self):
        return self._sweeps(with_points=self.action == "retrieve")

    def _sweeps(self, *, with_points: bool):
        counts = {
            f"n_{state}": Count("points", filter=Q(points__state=state)) for state in SweepPoint.State.values
        }
        found = (
            Sweep.objects.visible_to(self.request.user)
            .select_related("created_by")
            .annotate(**counts)
            .order_by("-created_at", "-id")  # an aggregate drops Meta.ordering; pages need a stable order
        )
        return found.prefetch_related("points__run") if with_points else found

    def get_serializer_class(self):
        return SweepDetailSerializer if self.action in ("retrieve", "create", "cancel") else SweepSerializer

    @extend_schema(request=SweepSerializer, responses={201: SweepDetailSerializer})
    def create(self, request, *args, **kwargs):
        """Expand the space, validate every point, launch the first ones; invalid points are listed, not run."""
        body = SweepSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            sweep = sweeps.create_sweep(
                data["base_experiment"],
                request.user,
                name=data["name"],
                space=data["space"],
                seeds=data.get("seeds", 1),
                samples=data.get("samples", 1),
                sample_seed=data.get("sample_seed", 0),
                concurrency=data.get("concurrency", 1),
                launcher=data.get("launcher"),
            )
        except SpecError as exc:
            raise SpecInvalid(exc) from None
        return Response(self._fresh(sweep), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: SweepDetailSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Launch nothing more and cancel the sweep's runs that are still in flight."""
        sweep = sweeps.cancel_sweep(self.get_object(), request.user)
        return Response(self._fresh(sweep))

    @extend_schema(responses={200: ConfigurationSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def results(self, request, pk=None):
        """Per configuration: its runs and, per benchmark, the best avg@k over each run's evaluations."""
        rows = [
            {
                "configuration": r.configuration,
                "overrides": r.overrides,
                "runs": [p.run_id for p in r.points if p.run_id],
                "states": [p.state for p in r.points],
                "best": r.summary,
            }
            for r in sweeps.configuration_results(self.get_object())
        ]
        return Response(rows)

    def _fresh(self, sweep: Sweep) -> dict:
        fresh = self._sweeps(with_points=True).get(pk=sweep.pk)
        return SweepDetailSerializer(fresh, context=self.get_serializer_context()).data
