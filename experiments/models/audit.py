"""The audit log: who launched, cancelled, resumed, shared or revoked what, and when; read by a team's admins.

An entry names its actor and target twice, by foreign key and in words, because the words must outlive the
rows: a deleted user or run still shows as "alice cancelled run 12 of sweep-a". Entries are only ever added.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from experiments.models.teams import Team


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        LAUNCH = "launch", "Launched"
        CANCEL = "cancel", "Cancelled"
        RESUME = "resume", "Resumed"
        SHARE = "share", "Shared"
        REVOKE = "revoke", "Revoked"
        SWEEP_CREATE = "sweep.create", "Created sweep"
        SWEEP_CANCEL = "sweep.cancel", "Cancelled sweep"
        MEMBER_ADD = "member.add", "Added member"
        MEMBER_ROLE = "member.role", "Changed role"
        MEMBER_REMOVE = "member.remove", "Removed member"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.CharField(
        max_length=32, help_text="run, checkpoint, sweep, share, view, user, evaluation job, difficulty job"
    )
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    target_label = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["team", "-at"], name="auditentry_team_at")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_label}"


def record(
    *, team: Team, actor, action: str, target_type: str, target_id: int | None, target_label: str, **detail
) -> AuditEntry:
    """Add one entry; ``detail`` holds whatever else an admin will want to know (JSON values)."""
    return AuditEntry.objects.create(
        team=team,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_name=str(actor) if actor is not None else "system",
        action=AuditEntry.Action(action),
        target_type=target_type,
        target_id=target_id,
        target_label=target_label[:300],
        detail=detail,
    )
