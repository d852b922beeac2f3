"""People: teams with roles, and projects owned by teams.

Everything in the platform belongs to exactly one team through its project, and a user sees an object only
when they are a member of that team. ``TeamScopedQuerySet.visible_to`` is the one place this rule is written.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TeamScopedQuerySet(models.QuerySet):
    """A queryset of objects that belong to a team; subclasses name the lookup path to that team."""

    #: the lookup from this model to its Team, with a trailing ``__`` ("" for Team itself).
    team_prefix = "team__"

    def visible_to(self, user) -> TeamScopedQuerySet:
        """Objects of the teams ``user`` is a member of (any role); nothing for anonymous users."""
        if not user.is_authenticated:
            return self.none()
        # Membership is unique per (team, user), so this join never duplicates rows.
        return self.filter(**{f"{self.team_prefix}memberships__user": user})


class TeamQuerySet(TeamScopedQuerySet):
    team_prefix = ""


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def role_of(self, user) -> str | None:
        """The user's role in this team, or None when they are not a member."""
        if not user.is_authenticated:
            return None
        return self.memberships.filter(user=user).values_list("role", flat=True).first()

    def can_write(self, user) -> bool:
        """Whether ``user`` may create and change things in this team (every role but viewer)."""
        return self.role_of(user) in Membership.WRITE_ROLES


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    #: Roles that may create experiments and launch runs; viewers only read.
    WRITE_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")]
        ordering = ["team__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Project(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "slug"], name="project_unique_team_slug")]
        ordering = ["team__name", "name"]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.slug}"


class ProjectScopedQuerySet(TeamScopedQuerySet):
    """For objects that belong to a project (experiments, sweeps)."""

    team_prefix = "project__team__"
