"""Sharing results: create and revoke read-only shares of runs, checkpoints and dashboard views.

The API and the pages call these; each checks the role rules of ``experiments.access`` (a member shares what
they launched, an admin anything of the team), refuses to pass on what the team only received, and writes
the audit log. Errors: ``PermissionDenied`` for a role that may not, ``ValidationError`` keyed by field.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from experiments import access
from experiments.models import Checkpoint, Run, Share, Team
from experiments.models.audit import AuditEntry, record


def _audience(owner: Team, *, team: Team | None, link: bool, expires_at: datetime | None) -> None:
    if (team is None) == (not link):
        raise ValidationError({"shared_with": "share with one other team, or create a link (not both)"})
    if team is not None and team.pk == owner.pk:
        raise ValidationError({"shared_with": f"{owner} can already read its own results"})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "must be in the future"})


def _owner_team(run: Run) -> Team:
    return run.experiment.project.team


@transaction.atomic
def _create(
    *,
    user,
    owner: Team,
    kind: str,
    title: str,
    team: Team | None,
    link: bool,
    expires_at: datetime | None,
    **target: Any,
) -> Share:
    _audience(owner, team=team, link=link, expires_at=expires_at)
    share = Share(
        team=owner, kind=kind, title=title[:200], shared_with=team, expires_at=expires_at, created_by=user, **target
    )
    if link:
        share.new_link_nonce()
    share.save()
    return share


def _audit_share(share: Share, user, action: str) -> None:
    record(
        team=share.team,
        actor=user,
        action=action,
        target_type=share.kind,
        target_id=share.checkpoint_id or share.run_id or share.pk,
        target_label=f"{share.get_kind_display().lower()} {share.title}",
        share=share.pk,
        audience=share.audience,
        expires_at=share.expires_at.isoformat() if share.expires_at else None,
    )


def share_run(run: Run, user, *, team: Team | None = None, link: bool = False, expires_at=None) -> Share:
    owner = _owner_team(run)
    if not access.can_manage(owner, user, run.created_by_id):
        raise PermissionDenied(f"{user} may not share run {run.pk}")
    share = _create(
        user=user, owner=owner, kind=Share.Kind.RUN, title=f"run {run.pk} of {run.experiment.name}",
        team=team, link=link, expires_at=expires_at, run=run,
    )
    _audit_share(share, user, AuditEntry.Action.SHARE)
    return share


def share_checkpoint(
    checkpoint: Checkpoint, user, *, team: Team | None = None, link: bool = False, expires_at=None
) -> Share:
    run = checkpoint.run
    owner = _owner_team(run)
    if not access.can_manage(owner, user, run.created_by_id):
        raise PermissionDenied(f"{user} may not share checkpoint {checkpoint.pk}")
    share = _create(
        user=user, owner=owner, kind=Share.Kind.CHECKPOINT,
        title=f"{run.experiment.name} run {run.pk} step {checkpoint.step}",
        team=team, link=link, expires_at=expires_at, checkpoint=checkpoint,
    )
    _audit_share(share, user, AuditEntry.Action.SHARE)
    return share


def share_view(
    runs: Iterable[Run],
    user,
    *,
    title: str,
    query: dict[str, Any],
    team: Team | None = None,
    link: bool = False,
    expires_at=None,
) -> Share:
    """Share a comparison view: its runs (all of one team, each one the user may share) and its query."""
    runs = list(runs)
    if not runs:
        raise ValidationError({"runs": "a view needs at least one run"})
    owners = {_owner_team(r).pk for r in runs}
    if len(owners) > 1:
        raise ValidationError({"runs": "a shared view holds the runs of one team; these belong to several"})
    owner = _owner_team(runs[0])
    refused = [r.pk for r in runs if not access.can_manage(owner, user, r.created_by_id)]
    if refused:
        raise PermissionDenied(f"{user} may not share runs {refused}")
    if not title.strip():
        raise ValidationError({"title": "give the view a title"})
    share = _create(
        user=user, owner=owner, kind=Share.Kind.VIEW, title=title.strip(), team=team, link=link,
        expires_at=expires_at, view_query=query,
    )
    share.view_runs.set(runs)
    _audit_share(share, user, AuditEntry.Action.SHARE)
    return share


def revoke_share(share: Share, user) -> Share:
    """End a share now; the team's admins and the share's creator may."""
    if not access.can_manage(share.team, user, share.created_by_id):
        raise PermissionDenied(f"{user} may not revoke share {share.pk}")
    if share.revoked_at is None:
        share.revoke()
        _audit_share(share, user, AuditEntry.Action.REVOKE)
    return share


def manageable_shares(user):
    """Shares of the user's teams that the user sees on the sharing page: all of them for a team's admins,
    their own for members (viewers see none: they cannot share)."""
    admin_teams = [t for t in access.team_ids(user) if access.is_admin(t, user)]
    return Share.objects.filter(Q(team_id__in=admin_teams) | Q(created_by=user, team_id__in=access.team_ids(user)))
