"""Query-string filters for the list endpoints, declared per view and described in the schema.

A view lists its filters as ``Filter`` entries; ``QueryFilters`` parses them (a value of the wrong type is a
400 naming the parameter, never a silent "no filter"), applies them to the list, and tells drf-spectacular
what they are. A filter marked ``many`` takes a comma list or the parameter repeated (``status=queued,running``
or ``status=queued&status=running``). Ordering is DRF's ``OrderingFilter`` (``?ordering=-created_at``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, filters

TRUE, FALSE = {"1", "true", "yes"}, {"0", "false", "no"}
#: query values past this length are refused: no name, tag or path is longer
MAX_TEXT = 200


@dataclass(frozen=True)
class Filter:
    name: str
    #: a lookup (``experiment_id``; ``__in`` is added for ``many``) or ``f(queryset, value, request) -> queryset``
    lookup: str | Callable[[QuerySet, Any], QuerySet]
    kind: type = int
    help: str = ""
    many: bool = False
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> Any:
        raw = raw.strip()
        if self.kind is int:
            if not raw.isdigit() or len(raw) > 18:
                raise ValueError("must be a whole number >= 0")
            return int(raw)
        if self.kind is bool:
            if raw.lower() not in TRUE | FALSE:
                raise ValueError("must be true or false")
            return raw.lower() in TRUE
        if len(raw) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters")
        if "\x00" in raw:
            raise ValueError("must not contain NUL characters")
        if self.choices and raw not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        return raw

    def schema(self) -> dict[str, Any]:
        item: dict[str, Any] = {"int": {"type": "integer", "minimum": 0}, "bool": {"type": "boolean"}}.get(
            self.kind.__name__, {"type": "string", "maxLength": MAX_TEXT}
        )
        if self.choices:
            item = {"type": "string", "enum": list(self.choices)}
        return {"type": "array", "items": item} if self.many else item


def apply(specs: tuple[Filter, ...], request, queryset: QuerySet) -> QuerySet:
    """The queryset narrowed by every filter the request gives; a bad value is a 400 naming its parameter."""
    problems: dict[str, str] = {}
    for spec in specs:
        raws = request.query_params.getlist(spec.name)
        if spec.many:
            raws = [part for raw in raws for part in raw.split(",") if part.strip()]
        else:
            raws = raws[-1:]
        if not raws:
            continue
        try:
            values = [spec.parse(raw) for raw in raws]
        except ValueError as exc:
            problems[spec.name] = str(exc)
            continue
        value = values if spec.many else values[0]
        if callable(spec.lookup):
            queryset = spec.lookup(queryset, value, request)
        else:
            queryset = queryset.filter(**{spec.lookup + ("__in" if spec.many else ""): value})
    if problems:
        raise exceptions.ValidationError(problems)
    return queryset


def parameters(specs: tuple[Filter, ...]) -> list[OpenApiParameter]:
    """The filters as drf-spectacular parameters, for an extra action that lists (``@extend_schema``)."""
    return [
        OpenApiParameter(
            spec.name,
            spec.schema(),
            description=spec.help,
            **({"style": "form", "explode": True} if spec.many else {}),
        )
        for spec in specs
    ]


class QueryFilters(filters.BaseFilterBackend):
    """The view's ``filters`` on its ``list`` action (an extra action that lists calls ``apply`` itself, with
    ``parameters`` for its schema: the backend would also filter the object lookup)."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        return apply(getattr(view, "filters", ()), request, queryset)

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": spec.name,
                "required": False,
                "in": "query",
                "description": spec.help,
                "schema": spec.schema(),
                **({"style": "form", "explode": True} if spec.many else {}),
            }
            for spec in getattr(view, "filters", ())
        ]


class Ordering(filters.OrderingFilter):
    """DRF's ordering, with the accepted fields listed in the schema."""

    def get_schema_operation_parameters(self, view):
        fields = [f for name in getattr(view, "ordering_fields", ()) for f in (name, f"-{name}")]
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Sort by one of these fields; a leading - sorts descending.",
                "schema": {"type": "string", "enum": fields},
            }
        ]
