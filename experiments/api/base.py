"""What every API view shares: the filter backends, and the rule that reads are scoped before anything else.

Each viewset's ``get_queryset`` returns only what the user may read (``experiments.access``), so an object of
another team is a 404 from ``get_object`` before any permission is asked; writes then go through the domain
actions (``experiments.actions``, ``experiments.sweeps``, ``experiments.sharing``), which raise
PermissionDenied (403) for a role that may not. Views never call each other or the page views.
"""

from __future__ import annotations

from django.db.models import ProtectedError
from rest_framework import mixins, serializers, viewsets

from experiments.api.errors import Conflict
from experiments.api.filters import Ordering, QueryFilters


class ApiViewSet(viewsets.GenericViewSet):
    filter_backends = [QueryFilters, Ordering]
    filters: tuple = ()
    ordering_fields: tuple[str, ...] = ()
    #: actions that may answer 409 (documented in the schema by ``schema.AutoSchema``)
    conflict_actions: tuple[str, ...] = ()


class DestroyMixin(mixins.DestroyModelMixin):
    """DELETE; an object that others still use (a dataset in a mix) is a 409 naming them."""

    def perform_destroy(self, instance) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            names = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
            raise Conflict(f"{instance} is still used by: {names}") from None


class UsernameField(serializers.CharField):
    """A user shown by name (read-only): users are referred to by username across the API."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value.get_username() if value is not None else None

