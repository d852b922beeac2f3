"""``/api/v1/``: the REST API; ``/api/schema/``: its OpenAPI 3 schema; ``/api/docs/`` and ``/api/redoc/``:
browsable documentation of it (Swagger UI and Redoc, served from the installed sidecar package).

The version is in the path: a change that breaks clients becomes ``/api/v2/`` beside this one.
"""

from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import routers

from experiments.api.checkpoints import CheckpointFileView, CheckpointViewSet, EvaluationViewSet
from experiments.api.datasets import DatasetMixViewSet, DatasetSourceViewSet
from experiments.api.experiments import ExperimentViewSet
from experiments.api.jobs import DifficultyJobViewSet, EvaluationJobViewSet
from experiments.api.metrics import MetricNamesView, MetricsView
from experiments.api.runs import RunViewSet
from experiments.api.shares import AuditViewSet, ShareViewSet
from experiments.api.sweeps import SweepViewSet
from experiments.api.teams import MemberViewSet, ProjectViewSet, TeamViewSet

router = routers.DefaultRouter(trailing_slash=True)
router.include_format_suffixes = False  # one URL per resource: JSON is chosen by Accept
router.register("teams", TeamViewSet, basename="api-team")
router.register(r"teams/(?P<team_pk>[0-9]+)/members", MemberViewSet, basename="api-member")
router.register("projects", ProjectViewSet, basename="api-project")
router.register("dataset-sources", DatasetSourceViewSet, basename="api-dataset-source")
router.register("dataset-mixes", DatasetMixViewSet, basename="api-dataset-mix")
router.register("experiments", ExperimentViewSet, basename="api-experiment")
router.register("runs", RunViewSet, basename="api-run")
router.register("checkpoints", CheckpointViewSet, basename="api-checkpoint")
router.register("evaluations", EvaluationViewSet, basename="api-evaluation")
router.register("evaluation-jobs", EvaluationJobViewSet, basename="api-evaluation-job")
router.register("difficulty-jobs", DifficultyJobViewSet, basename="api-difficulty-job")
router.register("sweeps", SweepViewSet, basename="api-sweep")
router.register("shares", ShareViewSet, basename="api-share")
router.register("audit", AuditViewSet, basename="api-audit")

@csrf_exempt  # it changes nothing; without this a DELETE would meet the CSRF check's HTML page instead
def not_found(request, path: str = "") -> JsonResponse:
    """Any other ``/api/`` URL (an id that is not a number, a misspelt resource): the one error body."""
    body = {"status": 404, "code": "not_found", "detail": f"no API endpoint at {request.path}", "errors": []}
    return JsonResponse(body, status=404)


urlpatterns = [
    path("v1/metrics/", MetricsView.as_view(), name="api-metrics"),
    path("v1/metrics/names/", MetricNamesView.as_view(), name="api-metric-names"),
    path("v1/checkpoints/<int:pk>/files/<path:file_path>", CheckpointFileView.as_view(), name="api-checkpoint-file"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^(?!ingest/)(?P<path>.*)$", not_found),
]
