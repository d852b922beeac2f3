"""The top bar links every page a person can reach without knowing its URL, and every link works.

A member of team Alpha sees the pages of the API and sharing features, the dashboards and the datasets, and
one checkpoint registry per project; the audit log is listed only for the teams one is an admin or owner of.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from experiments.actions import add_member
from experiments.models import Membership, Project, Team

pytestmark = pytest.mark.django_db


def nav_links(client) -> list[str]:
    html = client.get(reverse("home")).content.decode()
    nav = re.search(r'<nav id="topnav">(.*?)</nav>', html, re.S)
    assert nav, "the home page has no top bar"
    return re.findall(r'href="([^"]+)"', nav.group(1))


@pytest.fixture
def member(make_user, team):
    user = make_user("mo")
    add_member(team, user, Membership.Role.MEMBER)
    return user


def test_every_nav_link_resolves_for_a_member(client, member, project):
    second = Project.objects.create(team=project.team, name="Code RL", slug="code-rl")
    Project.objects.create(team=Team.objects.create(name="Beta", slug="beta"), name="Secret", slug="secret")
    client.force_login(member)
    links = nav_links(client)
    expected = [
        reverse("home"),
        reverse("run-list"),
        reverse("sweep-list"),
        reverse("compare"),
        reverse("leaderboard"),
        reverse("checkpoint-registry", args=[second.pk]),  # Alpha / Code RL before Alpha / Math RL
        reverse("checkpoint-registry", args=[project.pk]),
        reverse("dataset-upload"),
        reverse("share-list"),
        reverse("api-tokens"),
    ]
    assert links == expected  # no audit log (a member), no other team's project, no admin
    for url in links:
        assert client.get(url).status_code == 200, url


def test_admins_and_owners_also_get_their_teams_audit_logs(client, alice, team, make_user):
    beta = Team.objects.create(name="Beta", slug="beta")
    add_member(beta, alice, Membership.Role.VIEWER)  # not an admin there: no audit log of Beta
    admin = make_user("ada")
    add_member(team, admin, Membership.Role.ADMIN)
    for user in (alice, admin):
        client.force_login(user)
        audits = [url for url in nav_links(client) if "/audit/" in url]
        assert audits == [reverse("audit-log", args=[team.pk])]
        assert client.get(audits[0]).status_code == 200
    staff = make_user("root", is_staff=True)
    client.force_login(staff)
    assert reverse("admin:index") in nav_links(client)


def test_the_nav_needs_a_login(client):
    html = client.get(reverse("login")).content.decode()
    assert 'id="topnav"' not in html
