"""Every endpoint for every role: owner, admin, member, viewer of team Alpha, and bob of team Beta.

Reads: every member of the team 200; the outsider 404 (existence never leaks). Writes: viewers 403; a member
changes what they launched, an admin anything of the team, an owner also the members. Each role's request
runs in a savepoint that is rolled back, so every role meets the same state.
"""

from __future__ import annotations

from django.db import transaction

from experiments.models import AuditEntry
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)
from tests.platform.api_cast import ROLES, check

OK_ALL = {"owner": 200, "admin": 200, "member": 200, "viewer": 200, "outsider": 404}


def spec_of(c):
    return dict(c.experiment.spec, name="api-made")


CASES = [
    # ---- reads
    ("team", "get", lambda c: f"/api/v1/teams/{c.alpha.pk}/", None, OK_ALL),
    ("members", "get", lambda c: f"/api/v1/teams/{c.alpha.pk}/members/", None, OK_ALL),
    ("member", "get", lambda c: f"/api/v1/teams/{c.alpha.pk}/members/{c.users['viewer'].pk}/", None, OK_ALL),
    ("project", "get", lambda c: f"/api/v1/projects/{c.project.pk}/", None, OK_ALL),
    ("source", "get", lambda c: f"/api/v1/dataset-sources/{c.source.pk}/", None, OK_ALL),
    ("mix", "get", lambda c: f"/api/v1/dataset-mixes/{c.mix.pk}/", None, OK_ALL),
    ("experiment", "get", lambda c: f"/api/v1/experiments/{c.experiment.pk}/", None, OK_ALL),
    ("run", "get", lambda c: f"/api/v1/runs/{c.own_run.pk}/", None, OK_ALL),
    ("events", "get", lambda c: f"/api/v1/runs/{c.own_run.pk}/events/", None, OK_ALL),
    ("checkpoint", "get", lambda c: f"/api/v1/checkpoints/{c.checkpoint.pk}/", None, OK_ALL),
    ("manifest", "get", lambda c: f"/api/v1/checkpoints/{c.checkpoint.pk}/manifest/", None, OK_ALL),
    ("file", "get", lambda c: f"/api/v1/checkpoints/{c.checkpoint.pk}/files/{c.checkpoint_file}", None, OK_ALL),
    ("evaluation", "get", lambda c: f"/api/v1/evaluations/{c.evaluation.pk}/", None, OK_ALL),
    ("sweep", "get", lambda c: f"/api/v1/sweeps/{c.sweep.pk}/", None, OK_ALL),
    ("results", "get", lambda c: f"/api/v1/sweeps/{c.sweep.pk}/results/", None, OK_ALL),
    ("metrics", "get", lambda c: f"/api/v1/metrics/?run={c.own_run.pk}&name=critic/score/mean", None, OK_ALL),
    ("names", "get", lambda c: f"/api/v1/metrics/names/?run={c.own_run.pk}", None, OK_ALL),
    # ---- writes
    ("create project", "post", lambda c: "/api/v1/projects/",
     lambda c: {"team": c.alpha.pk, "name": "New", "slug": "new"},
     {"owner": 201, "admin": 201, "member": 403, "viewer": 403, "outsider": 400}),
    ("create source", "post", lambda c: "/api/v1/dataset-sources/",
     lambda c: {"team": c.alpha.pk, "name": "hard", "path": "/data/hard.jsonl"},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("edit source", "patch", lambda c: f"/api/v1/dataset-sources/{c.source.pk}/", lambda c: {"num_prompts": 9},
     {"owner": 200, "admin": 200, "member": 200, "viewer": 403, "outsider": 404}),
    ("delete source", "delete", lambda c: f"/api/v1/dataset-sources/{c.source.pk}/", None,
     {"owner": 409, "admin": 409, "member": 409, "viewer": 403, "outsider": 404}),  # the mix still uses it
    ("create mix", "post", lambda c: "/api/v1/dataset-mixes/",
     lambda c: {"team": c.alpha.pk, "name": "mix2", "entries": [{"source": c.source.pk, "weight": 1}]},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("delete mix", "delete", lambda c: f"/api/v1/dataset-mixes/{c.mix.pk}/", None,
     {"owner": 204, "admin": 204, "member": 204, "viewer": 403, "outsider": 404}),
    ("create experiment", "post", lambda c: "/api/v1/experiments/",
     lambda c: {"project": c.project.pk, "spec": spec_of(c)},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("duplicate", "post", lambda c: f"/api/v1/experiments/{c.experiment.pk}/duplicate/", lambda c: {"name": "copy"},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 404}),
    ("launch", "post", lambda c: "/api/v1/runs/", lambda c: {"experiment": c.experiment.pk},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("cancel own", "post", lambda c: f"/api/v1/runs/{c.own_run.pk}/cancel/", None,
     {"owner": 200, "admin": 200, "member": 200, "viewer": 403, "outsider": 404}),
    ("cancel other's", "post", lambda c: f"/api/v1/runs/{c.other_run.pk}/cancel/", None,
     {"owner": 200, "admin": 200, "member": 403, "viewer": 403, "outsider": 404}),
    ("create sweep", "post", lambda c: "/api/v1/sweeps/",
     lambda c: {"base_experiment": c.experiment.pk, "name": "new", "space": {"grid": {"seed": [1, 2]}}},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("cancel sweep", "post", lambda c: f"/api/v1/sweeps/{c.sweep.pk}/cancel/", None,
     {"owner": 200, "admin": 200, "member": 403, "viewer": 403, "outsider": 404}),
    ("share own run", "post", lambda c: "/api/v1/shares/",
     lambda c: {"kind": "run", "run": c.own_run.pk, "shared_with": "beta"},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("share other's run", "post", lambda c: "/api/v1/shares/",
     lambda c: {"kind": "run", "run": c.other_run.pk, "link": True},
     {"owner": 201, "admin": 201, "member": 403, "viewer": 403, "outsider": 400}),
    ("share checkpoint", "post", lambda c: "/api/v1/shares/",
     lambda c: {"kind": "checkpoint", "checkpoint": c.checkpoint.pk, "shared_with": "beta"},
     {"owner": 201, "admin": 201, "member": 201, "viewer": 403, "outsider": 400}),
    ("share view", "post", lambda c: "/api/v1/shares/",
     lambda c: {"kind": "view", "runs": [c.own_run.pk, c.other_run.pk], "title": "v", "link": True},
     {"owner": 201, "admin": 201, "member": 403, "viewer": 403, "outsider": 400}),
    ("add member", "post", lambda c: f"/api/v1/teams/{c.alpha.pk}/members/",
     lambda c: {"username": "bob", "role": "viewer"},
     {"owner": 201, "admin": 403, "member": 403, "viewer": 403, "outsider": 404}),
    ("change role", "patch", lambda c: f"/api/v1/teams/{c.alpha.pk}/members/{c.users['viewer'].pk}/",
     lambda c: {"role": "member"}, {"owner": 200, "admin": 403, "member": 403, "viewer": 403, "outsider": 404}),
    ("remove member", "delete", lambda c: f"/api/v1/teams/{c.alpha.pk}/members/{c.users['member'].pk}/", None,
     {"owner": 204, "admin": 403, "member": 403, "viewer": 403, "outsider": 404}),
]


def test_every_read_for_every_role(cast, api):
    assert check(cast, api, [c for c in CASES if c[1] == "get"]) == []


def test_every_write_for_every_role(cast, api):
    assert check(cast, api, [c for c in CASES if c[1] != "get"]) == []


def test_share_revocation_by_role(cast, api):
    """Admins revoke any share of the team, members their own; viewers and outsiders never see it (404)."""
    from experiments import sharing

    share = sharing.share_run(cast.own_run, cast.users["member"], link=True)
    other = sharing.share_run(cast.other_run, cast.users["owner"], link=True)
    expected = {
        share.pk: {"owner": 200, "admin": 200, "member": 200, "viewer": 404, "outsider": 404},
        other.pk: {"owner": 200, "admin": 200, "member": 404, "viewer": 404, "outsider": 404},
    }
    for pk, codes in expected.items():
        seen = {}
        for role in ROLES:
            with transaction.atomic():
                seen[role] = api(cast.users[role]).post(f"/api/v1/shares/{pk}/revoke/").status_code
                transaction.set_rollback(True)
        assert seen == codes


def test_lists_hold_only_what_the_role_may_read(cast, api):
    ids = {}
    for role in ROLES:
        client = api(cast.users[role])
        ids[role] = {
            "runs": {r["id"] for r in client.get("/api/v1/runs/").json()["results"]},
            "teams": {t["slug"] for t in client.get("/api/v1/teams/").json()["results"]},
            "checkpoints": {c["id"] for c in client.get("/api/v1/checkpoints/").json()["results"]},
            "audit": client.get("/api/v1/audit/").json()["count"],
        }
    alpha_runs = {cast.own_run.pk, cast.other_run.pk, *cast.sweep.runs.values_list("pk", flat=True)}
    for role in ("owner", "admin", "member", "viewer"):
        assert ids[role]["runs"] == alpha_runs and ids[role]["teams"] == {"alpha"}
        assert ids[role]["checkpoints"] == {cast.checkpoint.pk}
    assert ids["outsider"] == {"runs": {cast.beta_run.pk}, "teams": {"beta"}, "checkpoints": set(), "audit": 0}
    # the audit log (the sweep's creation and the launches of its first runs) is for the team's admins and owners
    alpha_entries = AuditEntry.objects.filter(team=cast.own_run.experiment.project.team).count()
    assert alpha_entries >= 1 + cast.sweep.runs.count()
    assert ids["owner"]["audit"] == ids["admin"]["audit"] == alpha_entries
    assert ids["member"]["audit"] == ids["viewer"]["audit"] == 0
