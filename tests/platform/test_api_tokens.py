"""Personal API tokens: shown once and stored hashed, read vs read-write scope, expiry, revocation; the
browser's session (with CSRF) beside them; a run's ingestion token is no API token, and the reverse."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from experiments.models import ApiToken
from experiments.models.runs import hash_token
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)
from tests.platform.api_cast import PASSWORD


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_token_is_stored_only_as_its_hash(cast):
    token, secret = ApiToken.issue(cast.users["member"], name="nb", scope="write")
    assert secret.startswith("or1_") and len(secret) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == hash_token(secret) and secret not in str(stored.__dict__)
    assert stored.hint == secret[:10] and ApiToken.find(secret) == stored


def test_read_scope_reads_but_cannot_write(cast):
    _, secret = ApiToken.issue(cast.users["owner"], name="ro", scope="read")
    client = bearer(secret)
    assert client.get(f"/api/v1/runs/{cast.own_run.pk}/").status_code == 200
    response = client.post(f"/api/v1/runs/{cast.own_run.pk}/cancel/")
    assert response.status_code == 403 and "read-only" in response.json()["detail"]
    assert client.post("/api/v1/runs/", {"experiment": cast.experiment.pk}, format="json").status_code == 403
    cast.own_run.refresh_from_db()
    assert cast.own_run.status == "queued"
    _, secret = ApiToken.issue(cast.users["owner"], name="rw", scope="write")
    assert bearer(secret).post(f"/api/v1/runs/{cast.own_run.pk}/cancel/").status_code == 200


def test_expired_revoked_unknown_and_ingestion_tokens_are_401(cast):
    user = cast.users["owner"]
    expired, expired_secret = ApiToken.issue(user, name="old", expires_at=timezone.now() + timedelta(seconds=60))
    revoked, revoked_secret = ApiToken.issue(user, name="gone")
    live, live_secret = ApiToken.issue(user, name="live", expires_at=timezone.now() + timedelta(days=1))
    assert bearer(expired_secret).get("/api/v1/teams/").status_code == 200
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked.revoke()
    ingest = cast.own_run.issue_ingest_token()
    for secret in (expired_secret, revoked_secret, "or1_" + "x" * 43, ingest, ""):
        response = bearer(secret).get("/api/v1/teams/")
        assert response.status_code == 401, secret
        assert response.json()["code"] in {"authentication_failed", "not_authenticated"}
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert bearer(live_secret).get("/api/v1/teams/").status_code == 200
    assert APIClient().get("/api/v1/teams/").status_code == 401
    live.refresh_from_db()
    assert live.last_used_at is not None


def test_an_api_token_cannot_write_metrics_through_ingestion(cast):
    _, secret = ApiToken.issue(cast.users["owner"], name="rw", scope="write")
    response = bearer(secret).post(
        f"/api/ingest/runs/{cast.own_run.pk}/metrics", {"records": []}, format="json"
    )
    assert response.status_code == 403


def test_a_deactivated_users_token_stops_working(cast):
    user = cast.users["member"]
    _, secret = ApiToken.issue(user, name="rw", scope="write")
    user.is_active = False
    user.save()
    assert bearer(secret).get("/api/v1/teams/").status_code == 401


def test_the_browser_session_works_and_its_writes_need_csrf(cast):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    assert client.get(f"/api/v1/runs/{cast.own_run.pk}/").status_code == 200
    refused = client.post(f"/api/v1/runs/{cast.own_run.pk}/cancel/")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]


def test_the_tokens_page_shows_a_new_secret_once_and_revokes(cast, client):
    client.force_login(cast.users["member"])
    page = client.post("/account/tokens/", {"name": "sweeps", "scope": "write", "expires_in_days": "30"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    secret = page.context["secret"]
    assert secret in page.content.decode()
    token = ApiToken.objects.get(user=cast.users["member"], name="sweeps")
    assert token.scope == "write"
    assert abs((token.expires_at - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)
    assert bearer(secret).get("/api/v1/teams/").status_code == 200
    again = client.get("/account/tokens/").content.decode()
    assert secret not in again and token.hint in again
    # another user's token cannot be revoked from here
    other, _ = ApiToken.issue(cast.users["owner"], name="alice's")
    assert client.post(f"/account/tokens/{other.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    assert bearer(secret).get("/api/v1/teams/").status_code == 401
