"""The top bar's menus: the pages that belong to one project (its checkpoint registry) or to one team (its
audit log, for the team's admins and owners), listed for the signed-in user. The other links of the bar take
no argument and are written in ``templates/base.html``; two small queries per page, whatever the page."""

from __future__ import annotations

from django import template

from experiments.access import ADMIN_ROLES
from experiments.models import Project, Team

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_menus(context) -> dict:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {"projects": [], "audit_teams": []}
    return {
        "projects": list(Project.objects.visible_to(user).select_related("team").order_by("team__name", "name")),
        "audit_teams": list(
            Team.objects.filter(memberships__user=user, memberships__role__in=ADMIN_ROLES).order_by("name")
        ),
    }
