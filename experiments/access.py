"""Who may read and change what: the roles of a team, and the read-only grants of shares.

Roles (``Membership.Role``):
    viewer  reads everything of the team
    member  also creates experiments and sweeps, launches runs, cancels and shares its own runs and sweeps
    admin   also cancels and shares anything of the team, revokes any of its shares, reads its audit log
    owner   also manages the team's members

Reading: a user reads what belongs to their teams, and what another team shared with one of them
(``experiments.models.sharing``). Anything else does not exist for them: callers answer 404, never 403, so
that an outsider cannot even learn an id is taken. A reader who may not write gets 403.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from experiments.models import Checkpoint, Membership, Run, Share, Team

ADMIN_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})


def role(team: Team | int, user) -> str | None:
    if not user.is_authenticated:
        return None
    team_id = team if isinstance(team, int) else team.pk
    return Membership.objects.filter(team_id=team_id, user=user).values_list("role", flat=True).first()


def team_ids(user) -> list[int]:
    """The teams ``user`` is a member of, any role (a short list: it is inlined into every read query)."""
    if not user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=user).values_list("team_id", flat=True))


def can_write(team: Team | int, user) -> bool:
    return role(team, user) in Membership.WRITE_ROLES


def is_admin(team: Team | int, user) -> bool:
    return role(team, user) in ADMIN_ROLES


def is_owner(team: Team | int, user) -> bool:
    return role(team, user) == Membership.Role.OWNER


def can_manage(team: Team | int, user, created_by_id: int | None) -> bool:
    """Cancel, share or revoke something: admins anything of the team, members what they created."""
    current = role(team, user)
    if current in ADMIN_ROLES:
        return True
    return current == Membership.Role.MEMBER and created_by_id is not None and created_by_id == user.pk


def received_shares(user) -> QuerySet[Share]:
    """Usable shares made to one of the user's teams."""
    return Share.objects.usable().filter(shared_with_id__in=team_ids(user))


def shared_run_ids(user) -> set[int]:
    shares = received_shares(user)
    direct = shares.filter(kind=Share.Kind.RUN).values_list("run_id", flat=True)
    in_views = Run.objects.filter(view_shares__in=shares.filter(kind=Share.Kind.VIEW)).values_list("pk", flat=True)
    return set(direct) | set(in_views)


def readable_runs(user) -> QuerySet[Run]:
    """Runs of the user's teams, and runs shared with them (directly or in a view)."""
    teams = team_ids(user)
    if not teams:
        return Run.objects.none()
    shared = shared_run_ids(user)
    condition = Q(experiment__project__team_id__in=teams)
    if shared:
        condition |= Q(pk__in=shared)
    return Run.objects.filter(condition)


def readable_checkpoints(user) -> QuerySet[Checkpoint]:
    """Checkpoints of the user's teams' runs, checkpoints shared with them, and those of runs shared with them."""
    teams = team_ids(user)
    if not teams:
        return Checkpoint.objects.none()
    shares = received_shares(user)
    direct = set(shares.filter(kind=Share.Kind.CHECKPOINT).values_list("checkpoint_id", flat=True))
    of_runs = set(shares.filter(kind=Share.Kind.RUN).values_list("run_id", flat=True))
    condition = Q(run__experiment__project__team_id__in=teams)
    if direct:
        condition |= Q(pk__in=direct)
    if of_runs:
        condition |= Q(run_id__in=of_runs)
    return Checkpoint.objects.filter(condition)
