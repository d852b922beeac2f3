"""Personal API tokens: how a script acts as its user on the REST API.

A token is shown once, when it is created, and only its SHA-256 is stored (the secret is 32 random bytes, so
an unsalted hash is as safe as a slow one and lets a request find its token with one indexed lookup). Its
scope is ``read`` (safe methods only) or ``write``; it may expire; revoking it stamps ``revoked_at`` so the
list keeps a record of what existed. The trainer's per-run ingestion tokens are a different thing
(``Run.ingest_token_hash``): they are never accepted here, and these are never accepted by ingestion.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from experiments.models.runs import hash_token

#: every secret starts with this, so a leaked one is recognisable (and greppable in logs and repositories)
TOKEN_PREFIX = "or1_"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        """Tokens not revoked and not expired, now."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'sweep notebook'.")
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=16, help_text="The secret's first characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…, {self.scope})"

    @classmethod
    def issue(
        cls, user, *, name: str, scope: str = Scope.READ, expires_at: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """A new token for ``user``; returns the row and the secret, which is not stored anywhere."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            scope=cls.Scope(scope),
            token_hash=hash_token(secret),
            hint=secret[: len(TOKEN_PREFIX) + 6],
            expires_at=expires_at,
        )
        return token, secret

    @classmethod
    def find(cls, secret: str) -> ApiToken | None:
        """The usable token with this secret, or None (unknown, revoked or expired)."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        return cls.objects.usable().select_related("user").filter(token_hash=hash_token(secret)).first()

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def allows_writes(self) -> bool:
        return self.scope == self.Scope.WRITE

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
