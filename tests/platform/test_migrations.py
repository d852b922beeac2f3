from __future__ import annotations

from django.core.management import call_command


def test_models_and_migrations_agree(db):
    """makemigrations --check exits non-zero (SystemExit) when a model change has no migration."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
