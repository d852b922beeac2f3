"""Secrets the platform must store to act for its users (a Slurm cluster's JWT or key), encrypted at rest.

The database holds only ``encrypt()``'s output: Fernet (AES-128-CBC with an HMAC-SHA256 tag, from the
``cryptography`` package), keyed by a key derived from ``DJANGO_SECRET_KEY``. A database dump or a backup
therefore does not hand over the cluster's credentials on its own. ``SECRET_KEY_FALLBACKS`` are tried when
decrypting, so a secret key can be rotated the way Django rotates it everywhere else: move the old key into
the fallbacks, and set each secret again (the admin's "replace" field) before dropping it.

Nothing here ever returns a secret to a page: forms show "set" / "not set" (``experiments/admin.py``).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

#: the derived key is bound to this purpose, so it is never the same as one Django derives from SECRET_KEY
_PURPOSE = b"or1lab.secrets.v1:"


class SecretUnreadable(ValueError):
    """A stored secret that no current key opens (the secret key changed without a fallback)."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(_PURPOSE + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(key) for key in keys])


def encrypt(value: bytes) -> str:
    """The text to store for ``value`` (a fresh IV each time: equal secrets do not look equal)."""
    return _keys().encrypt(value).decode("ascii")


def decrypt(stored: str) -> bytes:
    """The secret ``encrypt`` stored; raises SecretUnreadable, saying what to do, when no key opens it."""
    try:
        return _keys().decrypt(stored.encode("ascii"))
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted with DJANGO_SECRET_KEY (or SECRET_KEY_FALLBACKS): the key "
            "changed since it was saved; set the secret again in the admin"
        ) from exc
