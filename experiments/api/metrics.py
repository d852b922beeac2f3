"""Metric series of one or more runs, downsampled on the server exactly as the dashboards draw them.

``GET /api/v1/metrics/?run=3&run=5&name=actor/entropy_loss&step_min=0&step_max=500&max_points=2000`` answers
each (run, name) series that has points in the range. A range wider than ``max_points`` steps comes as
min/max buckets (``experiments.dashboards.series``: spikes survive, ``exact`` false); a narrower one comes
point for point (``exact`` true), so a client zooming in gets the full resolution. Non-finite values are
left out. Every run named must be readable: one that is not answers 404 for the whole request.
"""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments import access
from experiments.dashboards import series as chart_series

MAX_RUNS = 50
MAX_NAMES = 50
MAX_POINTS = 10_000
MAX_STEP = 2**31 - 1


class RunsQuerySerializer(serializers.Serializer):
    run = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_STEP), min_length=1, max_length=MAX_RUNS
    )


class MetricQuerySerializer(RunsQuerySerializer):
    name = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=MAX_NAMES)
    step_min = serializers.IntegerField(min_value=0, max_value=MAX_STEP, required=False)
    step_max = serializers.IntegerField(min_value=0, max_value=MAX_STEP, required=False)
    max_points = serializers.IntegerField(min_value=10, max_value=MAX_POINTS, required=False)

    def validate(self, attrs):
        if attrs.get("step_min") is not None and attrs.get("step_max") is not None:
            if attrs["step_min"] > attrs["step_max"]:
                raise serializers.ValidationError({"step_max": "must be >= step_min"})
        return attrs


class SeriesSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    name = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField())
    values = serializers.ListField(child=serializers.FloatField())
    exact = serializers.BooleanField(help_text="True when every point of the range is here (no bucketing).")
    count = serializers.IntegerField(help_text="How many stored points the range holds.")


class MetricsSerializer(serializers.Serializer):
    bucket_width = serializers.IntegerField(help_text="Steps per bucket; 1 means every point.")
    series = SeriesSerializer(many=True)


class MetricNamesSerializer(serializers.Serializer):
    names = serializers.ListField(child=serializers.CharField())


def _split(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part.strip()]


def _readable(request, run_ids: list[int]) -> list[int]:
    run_ids = list(dict.fromkeys(run_ids))
    found = set(access.readable_runs(request.user).filter(Q(pk__in=run_ids)).values_list("pk", flat=True))
    missing = [pk for pk in run_ids if pk not in found]
    if missing:
        raise NotFound(f"no run {missing[0]}")
    return run_ids


RUN = OpenApiParameter(
    "run", OpenApiTypes.INT, many=True, required=True, description="Run ids (the parameter repeated, or a comma list)."
)


class MetricsView(APIView):
    @extend_schema(
        parameters=[
            RUN,
            OpenApiParameter("name", OpenApiTypes.STR, many=True, required=True, description="Metric names."),
            OpenApiParameter("step_min", OpenApiTypes.INT, description="First step (default: the first logged)."),
            OpenApiParameter("step_max", OpenApiTypes.INT, description="Last step (default: the last logged)."),
            OpenApiParameter("max_points", OpenApiTypes.INT, description="Points per series at most (10-10000)."),
        ],
        responses={200: MetricsSerializer},
    )
    def get(self, request):
        """Metric series of runs, min/max-downsampled to ``max_points`` (the dashboards' downsampling)."""
        query = MetricQuerySerializer(
            data={
                "run": _split(request.query_params.getlist("run")),
                "name": request.query_params.getlist("name"),
                **{k: v for k in ("step_min", "step_max", "max_points") if (v := request.query_params.get(k))},
            }
        )
        query.is_valid(raise_exception=True)
        data = query.validated_data
        run_ids = _readable(request, data["run"])
        names = list(dict.fromkeys(data["name"]))
        result = chart_series.read(
            run_ids, names, lo=data.get("step_min"), hi=data.get("step_max"), max_points=data.get("max_points")
        )
        series = [
            {"run": run_id, "name": name, "steps": s.steps, "values": s.values, "exact": s.exact, "count": s.count}
            for (run_id, name), s in result.series.items()
        ]
        width = result.buckets.width if result.buckets else 1
        return Response({"bucket_width": width, "series": series})


class MetricNamesView(APIView):
    @extend_schema(parameters=[RUN], responses={200: MetricNamesSerializer})
    def get(self, request):
        """The metric names these runs have logged."""
        query = RunsQuerySerializer(data={"run": _split(request.query_params.getlist("run"))})
        query.is_valid(raise_exception=True)
        run_ids = _readable(request, query.validated_data["run"])
        return Response({"names": chart_series.metric_names(run_ids)})
