"""Read-only shares of a run, a checkpoint or a dashboard view, with another team or by a signed link.

A share never copies anything: it is a grant that the access rules (``experiments.access``) read on every
request, so revoking it (``revoked_at``) or passing its ``expires_at`` ends it at once, for a team and for a
link alike. A link's token is ``signing.dumps([share id, nonce])``: the signature stops anyone from forging
or guessing one, and the nonce, stored on the row, lets a lookup refuse a token whose share was revoked.

What each kind grants (read only):
    run         the run, its metrics, events, evaluations and checkpoints (with their files)
    checkpoint  that checkpoint: its manifest, files and evaluations
    view        a comparison view: the runs in it, their metrics, events and evaluations (not checkpoints),
                and the dashboard's query (``view_query``: selection, metrics, smoothing, grouping)
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core import signing
from django.db import models
from django.utils import timezone

from experiments.models.checkpoints import Checkpoint
from experiments.models.runs import Run
from experiments.models.teams import Team

LINK_SALT = "or1lab.share-link"


class ShareQuerySet(models.QuerySet):
    def usable(self) -> ShareQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class Share(models.Model):
    class Kind(models.TextChoices):
        RUN = "run", "Run"
        CHECKPOINT = "checkpoint", "Checkpoint"
        VIEW = "view", "Dashboard view"

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="shares_made", help_text="The team whose results these are."
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    title = models.CharField(max_length=200)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="shares")
    checkpoint = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="shares"
    )
    view_runs = models.ManyToManyField(Run, blank=True, related_name="view_shares")
    view_query = models.JSONField(
        default=dict, blank=True, help_text="The comparison dashboard's query parameters for a view share."
    )
    shared_with = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="shares_received"
    )
    link_nonce = models.CharField(max_length=43, blank=True, help_text="Set for a link share; part of its token.")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="shares"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ShareQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A share goes to exactly one audience: another team, or whoever holds the link.
            models.CheckConstraint(
                condition=(models.Q(shared_with__isnull=False) & models.Q(link_nonce=""))
                | (models.Q(shared_with__isnull=True) & ~models.Q(link_nonce="")),
                name="share_one_audience",
            ),
            models.CheckConstraint(
                condition=(models.Q(kind="run") & models.Q(run__isnull=False) & models.Q(checkpoint__isnull=True))
                | (models.Q(kind="checkpoint") & models.Q(checkpoint__isnull=False) & models.Q(run__isnull=True))
                | (models.Q(kind="view") & models.Q(run__isnull=True) & models.Q(checkpoint__isnull=True)),
                name="share_kind_matches_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.title} -> {self.audience}"

    @property
    def audience(self) -> str:
        return f"team {self.shared_with}" if self.shared_with_id else "anyone with the link"

    @property
    def is_link(self) -> bool:
        return bool(self.link_nonce)

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if not self.is_usable else "active"

    def new_link_nonce(self) -> None:
        self.link_nonce = secrets.token_urlsafe(32)

    @property
    def link_token(self) -> str:
        """The token of a link share (``""`` for a team share); it stays the same for the share's life."""
        return signing.dumps([self.pk, self.link_nonce], salt=LINK_SALT, compress=True) if self.is_link else ""

    @classmethod
    def from_link_token(cls, token: str) -> Share | None:
        """The usable link share this token was issued for, or None (forged, revoked, expired, unknown)."""
        try:
            pk, nonce = signing.loads(token, salt=LINK_SALT)
        except (signing.BadSignature, TypeError, ValueError):
            return None
        if not isinstance(pk, int) or not isinstance(nonce, str) or not nonce:
            return None
        return cls.objects.usable().filter(pk=pk, link_nonce=nonce).first()

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def covered_runs(self) -> models.QuerySet[Run]:
        """The runs this share lets its audience read."""
        if self.kind == self.Kind.RUN:
            return Run.objects.filter(pk=self.run_id)
        if self.kind == self.Kind.VIEW:
            return self.view_runs.all()
        return Run.objects.none()

    def covered_checkpoints(self) -> models.QuerySet[Checkpoint]:
        """The checkpoints (and so the files) this share lets its audience read."""
        if self.kind == self.Kind.CHECKPOINT:
            return Checkpoint.objects.filter(pk=self.checkpoint_id)
        if self.kind == self.Kind.RUN:
            return Checkpoint.objects.filter(run_id=self.run_id)
        return Checkpoint.objects.none()
