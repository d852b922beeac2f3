"""API authentication: personal tokens (``Authorization: Bearer or1_...``) beside the browser's session.

A request with a bearer header must carry a usable personal token: an unknown, revoked or expired one is 401,
never a fall-through to the session, and so is a run's ingestion token (which only the ingestion endpoints
accept). ``TokenScope`` lets a read-scoped token use only the safe methods (403 otherwise).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from experiments.models import ApiToken

#: a token's ``last_used_at`` is written at most this often (not one UPDATE per request)
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None
        secret = secret.strip()
        if not secret:
            raise exceptions.AuthenticationFailed("the Authorization header has no token after 'Bearer'")
        token = ApiToken.find(secret)
        if token is None:
            raise exceptions.AuthenticationFailed(
                "this token is unknown, revoked or expired (API tokens start with or1_; a run's ingestion "
                "token is not one)"
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("this token's user is deactivated")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="or1-api"'


class TokenScope(permissions.BasePermission):
    """A read-scoped token may only read; sessions and read-write tokens pass (roles decide the rest)."""

    message = "this API token is read-only: create a read-write token to change anything"

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if isinstance(token, ApiToken) and not token.allows_writes:
            return request.method in permissions.SAFE_METHODS
        return True


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (or1_...), created on the Tokens page; read or read-write.",
        }
