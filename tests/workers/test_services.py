"""The services that `make services` starts answer with the URLs and credentials it wrote.

Later tests (the Slurm launcher, PostgreSQL-backed platform tests, browser tests) stand on these, so a
failure here says "the environment is broken" before a hundred other tests say it less clearly.

The values come from the environment (`make test` exports the env file) or, when pytest runs by hand,
from the env file itself (OR1_SERVICES_ENV, default var/services.env). In CI a missing value is a
failure: .ci/run starts every service. Elsewhere the test skips and says which command provides it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _env_file_values() -> dict[str, str]:
    path = Path(os.environ.get("OR1_SERVICES_ENV", REPO / "var" / "services.env"))
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def service_env(*keys: str) -> dict[str, str]:
    """The named variables, from the environment first and the env file second; skip or fail if absent."""
    file_values = _env_file_values()
    found = {key: os.environ.get(key) or file_values.get(key, "") for key in keys}
    absent = [key for key, value in found.items() if not value]
    if absent:
        message = f"{', '.join(absent)} not set: run `make services` (it writes var/services.env)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def _slurm(path: str, token: str, env: dict[str, str]) -> httpx.Response:
    url = f"{env['SLURM_REST_URL'].rstrip('/')}/slurm/{env['SLURM_REST_API']}/{path}"
    headers = {"X-SLURM-USER-NAME": env["SLURM_REST_USER"], "X-SLURM-USER-TOKEN": token}
    return httpx.get(url, headers=headers, timeout=10)


SLURM_KEYS = ("SLURM_REST_URL", "SLURM_REST_API", "SLURM_REST_USER", "SLURM_REST_TOKEN")


@pytest.mark.slurm
def test_slurm_rest_ping_answers_with_the_written_token():
    env = service_env(*SLURM_KEYS)
    response = _slurm("ping", env["SLURM_REST_TOKEN"], env)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("errors", []) == []
    assert [ping["ping"] for ping in body["pings"]] == ["UP"]
    assert body["meta"]["Slurm"]["release"]


@pytest.mark.slurm
def test_slurm_rest_rejects_a_forged_token():
    """Guards the check above: slurmrestd must not answer ping for any token (it says no with HTTP 500)."""
    env = service_env(*SLURM_KEYS)
    header, payload, _signature = env["SLURM_REST_TOKEN"].split(".")
    response = _slurm("ping", f"{header}.{payload}.{_b64url(b'not-the-signature')}", env)
    assert response.status_code != 200


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.slurm
def test_a_token_minted_from_the_jwt_key_file_is_accepted():
    """The platform can mint its own short-lived tokens (HS256 over the key file) instead of shelling out."""
    env = service_env(*SLURM_KEYS, "SLURM_JWT_KEY_FILE")
    key = Path(env["SLURM_JWT_KEY_FILE"]).read_bytes()
    now = int(time.time())
    claims = {"iat": now, "exp": now + 300, "sun": env["SLURM_REST_USER"]}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode())
        for part in ({"alg": "HS256", "typ": "JWT"}, claims)
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    response = _slurm("ping", f"{signing_input}.{_b64url(signature)}", env)
    assert response.status_code == 200, response.text


def test_postgresql_accepts_the_app_role_and_lets_it_create_databases():
    import psycopg

    env = service_env("DATABASE_URL")
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT current_user, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row is not None and row[1] is True, f"{row}: Django's test runner needs CREATEDB"


def test_redis_answers_on_the_broker_url():
    import redis

    env = service_env("REDIS_URL", "CELERY_BROKER_URL")
    for url in env.values():
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert client.ping() is True
        client.close()


@pytest.mark.browser
def test_chromium_renders_a_page_under_playwright():
    from playwright.sync_api import sync_playwright

    env = service_env("OR1_CHROMIUM")
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=env["OR1_CHROMIUM"], headless=True, args=flags)
        try:
            page = browser.new_page()
            page.set_content("<button id=b onclick=\"this.textContent='clicked'\">go</button>")
            page.click("#b")
            assert page.text_content("#b") == "clicked"
        finally:
            browser.close()
