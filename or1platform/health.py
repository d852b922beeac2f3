"""Health endpoints for load balancers, container health checks and monitoring.

``/healthz`` (liveness): 200 when the process serves requests and the database answers. The container health
check and the reverse proxy use it, so a Slurm cluster that is down for maintenance never takes the web tier
out of service.

``/readyz`` (readiness): 200 only when every dependency answers (database, broker, each configured Slurm
cluster: ``or1platform/readiness.py``), else 503. The body is JSON with one entry per check and, when not
ready, ``reasons``: one line per failed check naming the dependency and its error.
"""

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from or1platform import readiness


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return HttpResponse(
            f"database unavailable: {exc.__class__.__name__}\n", status=503, content_type="text/plain"
        )
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness.run_checks()
    failed = [c for c in checks if not c.ok]
    body = {"ready": not failed, "checks": [c.as_dict() for c in checks]}
    if failed:
        body["reasons"] = [f"{c.name}: {c.detail}" for c in failed]
    return JsonResponse(body, status=503 if failed else 200)
