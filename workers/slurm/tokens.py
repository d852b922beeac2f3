"""Credentials for slurmrestd's rest_auth/jwt: a fixed token, or tokens minted from the cluster's key.

Slurm's auth/jwt accepts any HS256 token signed with the key named by `AuthAltParameters=jwt_key=...`
whose claims carry `sun` (the user name) and an `exp` in the future; `scontrol token` does nothing
more. Minting here, with the standard library's hmac, lets a long-lived worker hold short tokens and
renew them itself instead of carrying a day-long secret, and without shelling out to scontrol.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from pathlib import Path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(key: bytes, user: str, lifespan_s: int, now: float | None = None) -> str:
    """An HS256 JWT for `user` valid `lifespan_s` seconds from `now`."""
    issued = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iat": issued, "exp": issued + int(lifespan_s), "sun": user}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def load_key(key: bytes | str | os.PathLike) -> bytes:
    """The key itself (bytes) or the bytes of the key file (a path), used exactly as Slurm reads them."""
    if isinstance(key, bytes):
        if not key:
            raise ValueError("the JWT key is empty")
        return key
    data = Path(key).read_bytes()
    if not data:
        raise ValueError(f"the JWT key file {key} is empty")
    return data


class StaticToken:
    """A token handed over as is (for example from `scontrol token`); it is never renewed."""

    def __init__(self, token: str):
        if not token:
            raise ValueError("the Slurm token is empty")
        self._token = token

    def token(self) -> str:
        return self._token


class MintedToken:
    """Mints a token and replaces it once less than a quarter of its lifespan (at most 5 min) remains."""

    def __init__(self, key: bytes, user: str, lifespan_s: int = 3600, clock: Callable[[], float] = time.time):
        if lifespan_s < 10:
            raise ValueError(f"token_lifespan_s must be at least 10 seconds, got {lifespan_s}")
        self._key = key
        self._user = user
        self._lifespan_s = int(lifespan_s)
        self._margin_s = min(300, self._lifespan_s // 4)
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0

    def token(self) -> str:
        now = self._clock()
        if self._token is None or now >= self._expires - self._margin_s:
            self._token = mint_token(self._key, self._user, self._lifespan_s, now)
            self._expires = int(now) + self._lifespan_s
        return self._token
