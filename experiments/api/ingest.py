"""The trainer's ingestion API: ``POST /api/ingest/runs/<id>/metrics``, ``/events`` and ``/checkpoints``.

Plain Django views, not DRF: this is the platform's hottest path (every training step of every run) and it
needs no content negotiation, sessions or browsable pages; the storing itself is ``experiments.ingestion``.

Authorisation: ``Authorization: Bearer <token>``, the per-run token the launcher gave the trainer. It is valid
only for its own run (another run's token gets 403) and only for the launch it was issued for, since every
relaunch issues a new one. Replies are JSON:

    200 {"received": n, "stored": m, "skipped": k}   stored (m may be 0: a replay adds nothing)
    400 {"error": ..., "path": "records[3].metrics.actor/pg_loss"}   malformed; the path names the field
    401 no bearer token   403 wrong token   404 unknown run   413 body or batch too large

Bodies:
    /metrics       {"records": [{"step", "stage", "wall_time", "metrics": {name: value}}, ...]}
    /events        {"events": [{"kind", "message", "step", "at", "data"}, ...]}
    /checkpoints   {"events": [...]} of kind "checkpoint" only: what the trainer's sink sends for each saved
                   checkpoint (data: path, model_dir, stage, size_bytes, manifest); it is stored as an event
                   and registers the Checkpoint, exactly as the same event would through /events.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from experiments.ingestion import BatchError, BatchTooLarge, store_events, store_metrics
from experiments.models import Run


def _error(status: int, message: str, field_path: str = "") -> JsonResponse:
    body = {"error": message} | ({"path": field_path} if field_path else {})
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="or1-ingest"'
    return response


class _Refused(Exception):
    def __init__(self, response: JsonResponse):
        self.response = response


def _authorised_run(request: HttpRequest, run_id: int) -> Run:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _Refused(_error(401, "send the run's ingestion token as 'Authorization: Bearer <token>'"))
    run = Run.objects.filter(pk=run_id).only("id", "status", "ingest_token_hash", "started_at").first()
    if run is None:
        raise _Refused(_error(404, f"there is no run {run_id}"))
    if not run.check_ingest_token(token.strip()):
        raise _Refused(_error(403, f"this token may not write run {run_id}"))
    return run


def _json_body(request: HttpRequest):
    limit = settings.OR1_INGEST_MAX_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _Refused(_error(413, f"the body is larger than {limit} bytes; send smaller batches"))
    raw = request.read(limit + 1)  # the stream, not request.body: our limit, not DATA_UPLOAD_MAX_MEMORY_SIZE
    if len(raw) > limit:
        raise _Refused(_error(413, f"the body is larger than {limit} bytes; send smaller batches"))
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(_error(400, f"the body is not JSON: {exc}")) from None


def _endpoint(store):
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest, run_id: int) -> JsonResponse:
        try:
            run = _authorised_run(request, run_id)
            result = store(run, _json_body(request))
        except _Refused as refused:
            return refused.response
        except BatchTooLarge as exc:
            return _error(413, exc.message, exc.path)
        except BatchError as exc:
            return _error(400, exc.message, exc.path)
        return JsonResponse(result.as_dict())

    return view


metrics = _endpoint(lambda run, payload: store_metrics(run, payload, max_points=settings.OR1_INGEST_MAX_POINTS))
events = _endpoint(lambda run, payload: store_events(run, payload))
checkpoints = _endpoint(lambda run, payload: store_events(run, payload, only_kind="checkpoint"))

urlpatterns = [
    path("runs/<int:run_id>/metrics", metrics, name="ingest-metrics"),
    path("runs/<int:run_id>/events", events, name="ingest-events"),
    path("runs/<int:run_id>/checkpoints", checkpoints, name="ingest-checkpoints"),
]
