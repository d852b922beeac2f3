"""An experiment: a named run spec in a project. Runs launch from it with the spec frozen at that moment.

``spec`` keeps what the user wrote (validated by ``or1_train.spec.parse_spec`` on the way in, see
``experiments.actions``), so the page shows their YAML rather than every default; ``Run.spec_as_launched``
holds the full, normalised spec. ``parent`` links an experiment made by "duplicate and edit" to its origin.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, get_args

import yaml
from django.conf import settings
from django.db import models
from pydantic import BaseModel

from experiments.models.teams import Project, ProjectScopedQuerySet
from or1_train.spec import FieldError, RunSpec, SpecError, parse_spec


class Experiment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    spec = models.JSONField(help_text="The run spec as the user wrote it (validated on save by the actions).")
    tags = models.JSONField(default=list, blank=True, help_text="A list of short labels.")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="The experiment this one was duplicated from.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiments"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="experiment_unique_project_name")
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def spec_yaml(self) -> str:
        return yaml.safe_dump(
            in_declared_order(self.spec), sort_keys=False, allow_unicode=True, default_flow_style=None
        )

    @cached_property
    def _validation(self) -> tuple[RunSpec | None, list[FieldError]]:
        try:
            return parse_spec(self.spec), []
        except SpecError as exc:
            return None, exc.errors

    @property
    def parsed_spec(self) -> RunSpec | None:
        """The spec as a RunSpec, or None when it no longer validates (see ``spec_errors``)."""
        return self._validation[0]

    @property
    def spec_errors(self) -> list[FieldError]:
        """Problems with the stored spec, e.g. after the spec contract gained a rule; empty when valid."""
        return self._validation[1]


def in_declared_order(value: Any, annotation: Any = RunSpec) -> Any:
    """A stored spec with its keys in the order the spec's models declare them (unknown keys last).

    PostgreSQL's jsonb keeps an object's keys shortest first, so the spec as read back would show ``data``,
    ``loss`` and ``name`` before ``model`` and the ``description`` last.
    """
    model = _model_in(annotation)
    if isinstance(value, list):
        return [in_declared_order(item, annotation) for item in value]
    if not isinstance(value, dict) or model is None:
        return value
    fields = model.model_fields
    ordered = {key: in_declared_order(value[key], fields[key].annotation) for key in fields if key in value}
    return ordered | {key: item for key, item in value.items() if key not in ordered}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in an annotation such as ``Stage``, ``list[Stage]`` or ``ModelBootstrap | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)
