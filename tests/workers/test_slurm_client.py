"""Client behaviour that needs no cluster: credentials, minted tokens, unreachable or silent servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket

import pytest

from workers.slurm import SlurmClient, SlurmUnavailable
from workers.slurm.client import signal_name
from workers.slurm.tokens import MintedToken, load_key, mint_token

KEY = bytes(range(32))


def _decode(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_minted_token_is_hs256_with_slurms_claims():
    token = mint_token(KEY, "slurmci", 600, now=1_000_000)
    header, claims, signature = token.split(".")
    assert _decode(header) == {"alg": "HS256", "typ": "JWT"}
    assert _decode(claims) == {"iat": 1_000_000, "exp": 1_000_600, "sun": "slurmci"}
    expected = hmac.new(KEY, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert "=" not in token  # base64url without padding, as JWT requires


def test_minted_token_is_renewed_before_it_expires():
    now = [1_000_000.0]
    minted = MintedToken(KEY, "slurmci", lifespan_s=400, clock=lambda: now[0])
    first = minted.token()
    now[0] += 299  # 101 s left; renewal starts at a quarter of the lifespan (100 s)
    assert minted.token() == first
    now[0] += 2
    second = minted.token()
    assert second != first
    assert _decode(second.split(".")[1])["exp"] == int(now[0]) + 400


def test_key_renewal_margin_is_at_most_five_minutes():
    now = [0.0]
    minted = MintedToken(KEY, "u", lifespan_s=86400, clock=lambda: now[0])
    first = minted.token()
    now[0] = 86400 - 301
    assert minted.token() == first
    now[0] = 86400 - 299
    assert minted.token() != first


def test_load_key_from_bytes_or_file(tmp_path):
    path = tmp_path / "jwt.key"
    path.write_bytes(KEY)
    assert load_key(path) == KEY == load_key(str(path)) == load_key(KEY)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_key(tmp_path / "empty")


def test_client_needs_exactly_one_credential():
    with pytest.raises(ValueError, match="exactly one"):
        SlurmClient("http://127.0.0.1:1", "v0.0.38", "slurmci")
    with pytest.raises(ValueError, match="exactly one"):
        SlurmClient("http://127.0.0.1:1", "v0.0.38", "slurmci", token="t", jwt_key=KEY)
    with pytest.raises(ValueError, match="unsupported slurmrestd API"):
        SlurmClient("http://127.0.0.1:1", "v0.0.99", "slurmci", token="t")


def test_from_env_prefers_the_token_and_falls_back_to_the_key_file(tmp_path):
    key = tmp_path / "jwt.key"
    key.write_bytes(KEY)
    env = {"SLURM_REST_URL": "http://127.0.0.1:1", "SLURM_REST_API": "v0.0.41", "SLURM_REST_USER": "u"}
    with SlurmClient.from_env({**env, "SLURM_REST_TOKEN": "tok", "SLURM_JWT_KEY_FILE": str(key)}) as client:
        assert client._credentials.token() == "tok" and client.adapter.version == "v0.0.41"
    with SlurmClient.from_env({**env, "SLURM_JWT_KEY_FILE": str(key)}) as client:
        assert _decode(client._credentials.token().split(".")[1])["sun"] == "u"
    with pytest.raises(ValueError, match="SLURM_REST_USER"):
        SlurmClient.from_env({"SLURM_REST_URL": "http://x"})


@pytest.mark.parametrize(
    ("given", "name"), [("SIGTERM", "SIGTERM"), ("term", "SIGTERM"), (9, "SIGKILL"), ("15", "SIGTERM")]
)
def test_signal_names(given, name):
    assert signal_name(given) == name


def test_unknown_signal_is_refused_before_any_request():
    with pytest.raises(ValueError, match="unknown signal"):
        signal_name("SIGNOPE")


def test_refused_connection_is_unavailable():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SlurmClient(f"http://127.0.0.1:{port}", "v0.0.38", "slurmci", token="t") as client:
        with pytest.raises(SlurmUnavailable, match="cannot reach slurmrestd") as info:
            client.ping()
    assert info.value.status_code is None


def test_silent_server_times_out_as_unavailable():
    with socket.socket() as server:  # accepts the TCP connection (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        with SlurmClient(url, "v0.0.38", "slurmci", token="t", timeout=0.3) as client:
            with pytest.raises(SlurmUnavailable, match="did not answer within 0.3s"):
                client.job(1)
