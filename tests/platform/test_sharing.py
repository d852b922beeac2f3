"""Sharing: a run, a checkpoint or a view with another team (read-only), or by a signed link; revoking or
expiry ends access at once; the pages of shares, the checkpoint registry, the audit log and sweeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from experiments import sharing
from experiments.models import AuditEntry, Share, SweepPoint
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)


def test_a_run_shared_with_a_team_reads_like_its_own_but_cannot_be_changed(cast, api):
    bob = api(cast.users["outsider"])
    run_url = f"/api/v1/runs/{cast.own_run.pk}/"
    assert bob.get(run_url).status_code == 404
    share = sharing.share_run(cast.own_run, cast.users["member"], team=cast.beta)
    listed = {r["id"]: r["access"] for r in bob.get("/api/v1/runs/").json()["results"]}
    assert listed == {cast.beta_run.pk: "team", cast.own_run.pk: "shared"}
    assert bob.get(f"/api/v1/metrics/?run={cast.own_run.pk}&name=critic/score/mean").json()["series"][0]["count"] == 10
    assert bob.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/files/model/config.json").status_code == 200
    assert bob.get(f"/api/v1/evaluations/?run={cast.own_run.pk}").json()["count"] == 1
    assert bob.post(f"{run_url}cancel/").status_code == 403
    assert (
        bob.post("/api/v1/shares/", {"kind": "run", "run": cast.own_run.pk, "link": True}, format="json").status_code
        == 403
    )  # what Beta received, it cannot pass on
    assert bob.get(f"/api/v1/experiments/{cast.experiment.pk}/").status_code == 404  # the run only
    received = bob.get("/api/v1/shares/?direction=received").json()["results"]
    assert [(s["id"], s["direction"], s["link_url"]) for s in received] == [(share.pk, "received", None)]
    sharing.revoke_share(share, cast.users["admin"])
    assert bob.get(run_url).status_code == 404
    assert bob.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/").status_code == 404


def test_a_checkpoint_share_grants_the_checkpoint_and_a_view_share_its_runs(cast, api):
    bob = api(cast.users["outsider"])
    sharing.share_checkpoint(cast.checkpoint, cast.users["member"], team=cast.beta)
    assert bob.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/").status_code == 200
    assert bob.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/manifest/").json()["step"] == 4
    assert bob.get(f"/api/v1/runs/{cast.own_run.pk}/").status_code == 404
    Share.objects.all().delete()
    sharing.share_view(
        [cast.own_run, cast.other_run],
        cast.users["admin"],
        title="targets",
        query={"group": ["entropy.target"]},
        team=cast.beta,
    )
    ids = {r["id"] for r in bob.get("/api/v1/runs/").json()["results"]}
    assert ids == {cast.beta_run.pk, cast.own_run.pk, cast.other_run.pk}
    assert bob.get(f"/api/v1/checkpoints/{cast.checkpoint.pk}/").status_code == 404


def test_sharing_rules(cast):
    with pytest.raises(PermissionDenied):
        sharing.share_run(cast.other_run, cast.users["member"], link=True)  # not theirs
    with pytest.raises(PermissionDenied):
        sharing.share_run(cast.own_run, cast.users["viewer"], link=True)
    with pytest.raises(ValidationError, match="its own results"):
        sharing.share_run(cast.own_run, cast.users["owner"], team=cast.alpha)
    with pytest.raises(ValidationError, match="not both"):
        sharing.share_run(cast.own_run, cast.users["owner"], team=cast.beta, link=True)
    with pytest.raises(ValidationError, match="future"):
        sharing.share_run(cast.own_run, cast.users["owner"], link=True, expires_at=timezone.now())
    with pytest.raises(ValidationError, match="one team"):
        sharing.share_view([cast.own_run, cast.beta_run], cast.users["owner"], title="x", query={}, link=True)
    share = sharing.share_run(cast.own_run, cast.users["member"], link=True)
    with pytest.raises(PermissionDenied):
        sharing.revoke_share(share, cast.users["viewer"])


def test_a_link_works_without_login_until_it_is_revoked(cast, client):
    share = sharing.share_run(cast.own_run, cast.users["member"], link=True)
    url = f"/shared/{share.link_token}/"
    page = client.get(url)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    text = page.content.decode()
    assert f"#{cast.own_run.pk}" in text and "model/config.json" in text and "arith" in text
    file_url = f"/shared/{share.link_token}/checkpoints/{cast.checkpoint.pk}/model/config.json"
    assert b"".join(client.get(file_url).streaming_content) == b'{"hidden_size": 64}'
    manifest = client.get(f"/shared/{share.link_token}/checkpoints/{cast.checkpoint.pk}/manifest.json")
    assert manifest.json()["step"] == 4
    assert client.get(f"/shared/{share.link_token}/checkpoints/{cast.checkpoint.pk}/../secret.txt").status_code == 404
    sharing.revoke_share(share, cast.users["member"])
    assert client.get(url).status_code == 404
    assert client.get(file_url).status_code == 404


def test_a_link_dies_at_its_expiry_and_cannot_be_forged(cast, client):
    share = sharing.share_checkpoint(
        cast.checkpoint, cast.users["member"], link=True, expires_at=timezone.now() + timedelta(hours=1)
    )
    token = share.link_token
    assert client.get(f"/shared/{token}/").status_code == 200
    Share.objects.filter(pk=share.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/shared/{token}/").status_code == 404
    other = sharing.share_run(cast.own_run, cast.users["member"], link=True)
    forged = other.link_token[:-3] + ("aaa" if not other.link_token.endswith("aaa") else "bbb")
    assert client.get(f"/shared/{forged}/").status_code == 404
    from django.core import signing

    wrong_nonce = signing.dumps([other.pk, "guess"], salt="or1lab.share-link", compress=True)
    assert client.get(f"/shared/{wrong_nonce}/").status_code == 404
    assert client.get(f"/shared/{other.link_token}/").status_code == 200


def test_the_share_pages(cast, client):
    client.force_login(cast.users["member"])
    form = client.get(f"/shares/new/?run={cast.own_run.pk}")
    assert form.status_code == 200
    done = client.post(f"/shares/new/?run={cast.own_run.pk}", {"audience": "link", "expires_in_days": "7"})
    assert done.status_code == 302
    share = Share.objects.get()
    assert share.is_link and share.expires_at > timezone.now() + timedelta(days=6)
    listing = client.get("/shares/").content.decode()
    assert share.link_token in listing
    bad = client.post(f"/shares/new/?run={cast.own_run.pk}", {"audience": "team", "team": "nope"})
    assert bad.status_code == 200 and "no team with this slug" in bad.content.decode()
    assert client.get(f"/shares/new/?run={cast.beta_run.pk}").status_code == 404
    view = client.post(f"/shares/new/?runs={cast.own_run.pk}&query=group%3Dseed", {"audience": "team", "team": "beta"})
    assert view.status_code == 302
    viewed = Share.objects.get(kind="view")
    assert viewed.view_query == {"group": ["seed"]} and list(viewed.view_runs.all()) == [cast.own_run]
    assert client.post(f"/shares/{share.pk}/revoke/").status_code == 302
    assert client.get(f"/shared/{share.link_token}/").status_code == 404
    client.force_login(cast.users["outsider"])
    page = client.get(f"/shares/{viewed.pk}/")
    assert page.status_code == 200 and f"#{cast.own_run.pk}" in page.content.decode()
    client.force_login(cast.users["viewer"])
    assert client.post(f"/shares/new/?run={cast.own_run.pk}", {"audience": "link"}).status_code == 403


def test_registry_and_checkpoint_pages(cast, client):
    client.force_login(cast.users["viewer"])
    page = client.get(f"/projects/{cast.project.pk}/checkpoints/")
    assert page.status_code == 200 and "step-000004/model" in page.content.decode()
    detail = client.get(f"/checkpoints/{cast.checkpoint.pk}/")
    assert detail.status_code == 200 and "Share this checkpoint" not in detail.content.decode()
    got = client.get(f"/checkpoints/{cast.checkpoint.pk}/files/model/model.safetensors")
    assert got["Content-Disposition"].startswith("attachment") and len(b"".join(got.streaming_content)) == 576
    client.force_login(cast.users["member"])
    assert "Share this checkpoint" in client.get(f"/checkpoints/{cast.checkpoint.pk}/").content.decode()
    client.force_login(cast.users["outsider"])
    assert client.get(f"/projects/{cast.project.pk}/checkpoints/").status_code == 404
    assert client.get(f"/checkpoints/{cast.checkpoint.pk}/").status_code == 404
    assert client.get(f"/checkpoints/{cast.checkpoint.pk}/files/model/config.json").status_code == 404


def test_the_audit_log_page_is_for_admins(cast, client):
    share = sharing.share_run(cast.own_run, cast.users["member"], link=True)
    sharing.revoke_share(share, cast.users["admin"])
    entries = list(AuditEntry.objects.filter(team=cast.alpha).values_list("actor_name", "action"))
    launches = [e for e in entries if e[1] == "launch"]
    assert launches == [("alice", "launch")] * cast.sweep.runs.count()  # the sweep's first runs
    assert [e for e in entries if e[1] != "launch"] == [("ada", "revoke"), ("mo", "share"), ("alice", "sweep.create")]
    for role, code in (("owner", 200), ("admin", 200), ("member", 403), ("viewer", 403), ("outsider", 404)):
        client.force_login(cast.users[role])
        response = client.get(f"/teams/{cast.alpha.pk}/audit/")
        assert response.status_code == code, role
        if code == 200:
            assert "Revoked" in response.content.decode() and "anyone with the link" in response.content.decode()


def test_the_sweep_pages(cast, client, django_capture_on_commit_callbacks):
    client.force_login(cast.users["member"])
    url = f"/experiments/{cast.experiment.pk}/sweeps/new/"
    assert client.get(url).status_code == 200
    broken = client.post(
        url,
        {
            "name": "b",
            "space": "grid:\n  stages[7].steps: [1]\n",
            "seeds": 1,
            "samples": 1,
            "sample_seed": 0,
            "concurrency": 1,
            "launcher": "local",
        },
    )
    assert broken.status_code == 200 and "stages[7].steps" in broken.content.decode()
    space = "grid:\n  entropy.target: [0.1, 0.2]\n  stages[0].max_response_tokens: [64, 256]\n"
    with django_capture_on_commit_callbacks(execute=False):
        made = client.post(
            url,
            {
                "name": "ui",
                "space": space,
                "seeds": 2,
                "samples": 1,
                "sample_seed": 0,
                "concurrency": 2,
                "launcher": "local",
            },
        )
    assert made.status_code == 302
    sweep = cast.experiment.sweeps.get(name="ui")
    assert sweep.points.count() == 8 and sweep.points.filter(state=SweepPoint.State.INVALID).count() == 4
    page = client.get(made["Location"]).content.decode()
    assert f"/compare/?sweep={sweep.pk}&amp;group=entropy.target" in page and "Invalid points" in page
    assert "Cancel sweep" in page
    client.force_login(cast.users["viewer"])
    assert client.get(url).status_code == 403
    assert "Cancel sweep" not in client.get(made["Location"]).content.decode()
    assert client.post(f"/sweeps/{sweep.pk}/cancel/").status_code == 403
    client.force_login(cast.users["member"])
    assert client.post(f"/sweeps/{sweep.pk}/cancel/").status_code == 302
    sweep.refresh_from_db()
    assert sweep.status == "cancelled"
    assert client.get("/sweeps/").status_code == 200
