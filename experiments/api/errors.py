"""One error format for every API response that is not a success.

    {"status": 400, "code": "invalid", "detail": "...", "errors": [{"path": "spec.stages[1].steps", "message": "..."}]}

``errors`` lists field problems, each at its path in the request body, written the way the run spec writes
its own paths (``stages[1].max_response_tokens``), so a spec error inside a request reads
``spec.stages[1].max_response_tokens``. It is empty for errors that concern no field (401, 403, 404, 409).

The handler maps the domain's exceptions as the pages do: ``SpecError`` and Django's ``ValidationError`` are
400, ``PermissionDenied`` 403, ``Http404`` 404, ``InvalidTransition`` (a run that has already ended) 409.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from experiments.models import InvalidTransition
from or1_train.spec import SpecError


class SpecInvalid(exceptions.APIException):
    """A run spec (or a sweep's space) in the request did not validate; paths are relative to the body."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_spec"

    def __init__(self, error: SpecError, prefix: str = ""):
        self.fields = [
            {"path": _join(prefix, e.path), "message": e.message} for e in error.errors
        ]
        super().__init__("the spec does not validate: " + "; ".join(str(e) for e in error.errors))


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "the object is not in a state that allows this"


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail ({field: [msg]}, lists of those for many=True) as [{path, message}]."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                path = prefix
            elif isinstance(key, int) or str(key).isdigit():  # an item of a list field
                path = f"{prefix}[{key}]"
            else:
                path = _join(prefix, str(key))
            out.extend(flatten(value, path))
    elif isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            out.extend({"path": prefix, "message": str(item)} for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    out.extend(flatten(item, f"{prefix}[{index}]"))
    else:
        out.append({"path": prefix, "message": str(detail)})
    return out


def _body(status_code: int, code: str, detail: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    return {"status": status_code, "code": code, "detail": detail, "errors": errors}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, SpecError):
        exc = SpecInvalid(exc)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, InvalidTransition):
        exc = Conflict(str(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, SpecInvalid):
        body = _body(response.status_code, code, str(exc.detail), exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        errors = flatten(exc.detail)
        detail = "; ".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors)
        body = _body(response.status_code, "invalid", detail or "invalid request", errors)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        if isinstance(detail, list | dict):
            errors = flatten(detail)
            body = _body(response.status_code, code, "; ".join(e["message"] for e in errors), errors)
        else:
            codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else code
            body = _body(response.status_code, codes if isinstance(codes, str) else code, str(detail), [])
    response.data = body
    return response


class FieldErrorSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Where in the request body, e.g. spec.stages[1].max_response_tokens")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    status = serializers.IntegerField()
    code = serializers.CharField(help_text="invalid, invalid_spec, not_authenticated, permission_denied, ...")
    detail = serializers.CharField()
    errors = FieldErrorSerializer(many=True)
