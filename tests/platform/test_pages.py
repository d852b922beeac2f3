"""Login, the home page, experiment and run pages, and the 404 for another team's objects."""

from __future__ import annotations

import pytest
from django.urls import reverse

from experiments.actions import add_member, create_experiment_from_spec, create_run
from experiments.models import Membership, Project, RunStatus, Team

PASSWORD = "a-long-test-password-1"  # tests/conftest.py


@pytest.fixture
def other_team_run(make_user, spec_data):
    """A run in a team alice is not in."""
    bob = make_user("bob")
    team = Team.objects.create(name="Beta", slug="beta")
    add_member(team, bob, Membership.Role.OWNER)
    project = Project.objects.create(team=team, name="Secret", slug="secret")
    experiment = create_experiment_from_spec(
        project=project, user=bob, spec=spec_data, name="beta-secret-exp"
    )
    return create_run(experiment, user=bob)


def test_pages_need_a_login(client, run):
    for url in (
        reverse("home"),
        reverse("experiment-detail", args=[run.experiment_id]),
        reverse("run-detail", args=[run.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_login_and_logout(client, alice):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    wrong = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b"Please enter a correct username and password" in wrong.content
    right = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert right.status_code == 302 and right.url == reverse("home")
    assert client.get(reverse("home")).status_code == 200
    out = client.post(reverse("logout"))
    assert out.status_code == 302 and out.url == reverse("login")
    assert client.get(reverse("home")).status_code == 302


def test_home_lists_the_users_teams_projects_experiments_and_runs(client, alice, run, other_team_run):
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    assert "Alpha" in html and "Owner" in html
    assert "Math RL" in html
    assert reverse("experiment-detail", args=[run.experiment_id]) in html
    assert reverse("run-detail", args=[run.pk]) in html
    assert '<span class="badge badge-running">Running</span>' in html
    assert "Beta" not in html and "beta-secret-exp" not in html
    assert reverse("run-detail", args=[other_team_run.pk]) not in html


def test_experiment_page_shows_spec_stages_mix_and_runs(client, alice, run):
    client.force_login(alice)
    html = client.get(reverse("experiment-detail", args=[run.experiment_id])).content.decode()
    assert "max_response_tokens: 128" in html  # the YAML
    assert "5 steps in all" in html
    assert "75.0%" in html and "25.0%" in html  # data mix shares
    assert reverse("run-detail", args=[run.pk]) in html
    assert '<span class="badge badge-queued">Queued</span>' in html


def test_experiment_page_lists_problems_of_a_spec_that_no_longer_validates(client, alice, experiment):
    experiment.spec["stages"][1]["max_response_tokens"] = 32
    experiment.save()
    client.force_login(alice)
    html = client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert "This spec no longer validates" in html and "stages[1].max_response_tokens" in html


def test_run_page_shows_status_stage_progress_and_events(client, alice, run):
    run.transition_to(RunStatus.STARTING, reason="submitted")
    run.transition_to(RunStatus.RUNNING)
    run.current_stage, run.current_step = 1, 4
    run.save()
    client.force_login(alice)
    html = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert "4 / 5" in html
    assert "2 of 2: long (128 response tokens)" in html
    assert "queued -&gt; starting: submitted" in html and "starting -&gt; running" in html
    # still polling while the run can change (and only while the tab is visible)
    assert "hx-trigger=\"every 3s [document.visibilityState === 'visible']\"" in html


def test_run_status_panel_stops_polling_once_the_run_is_finished(client, alice, run):
    client.force_login(alice)
    url = reverse("run-status", args=[run.pk])
    assert f'hx-get="{url}"' in client.get(url).content.decode()
    run.transition_to(RunStatus.CANCELLED, reason="not needed")
    html = client.get(url).content.decode()
    assert "badge-cancelled" in html and "hx-get" not in html


def test_another_teams_experiment_and_run_are_not_found(client, alice, other_team_run):
    client.force_login(alice)
    urls = [
        reverse("experiment-detail", args=[other_team_run.experiment_id]),
        reverse("run-detail", args=[other_team_run.pk]),
        reverse("run-status", args=[other_team_run.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404
        assert b"beta-secret-exp" not in response.content


def test_static_assets_are_vendored_not_from_a_cdn(client, alice):
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    assert "/static/vendor/htmx.min.js" in html and "/static/css/or1.css" in html
    assert "https://" not in html


def test_health_check(client, db):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200 and response.content == b"ok\n"
