"""Operator commands: ``create_team`` and ``rotate_slurm_token``.

The Slurm tests ping a real slurmrestd: an unreachable one always, and the local cluster of ``make services``
where the environment names it (SLURM_REST_URL, SLURM_REST_USER and a readable SLURM_JWT_KEY_FILE).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments.management.commands.rotate_slurm_token import read_env_file, write_env_value
from workers.slurm import SlurmClient

PASSWORD = "a-long-operator-password-3"


def command(*args, stdin: str | None = None, monkeypatch=None) -> str:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# ------------------------------------------------------------------------------------------ create_team


@pytest.mark.django_db
def test_create_team_makes_the_team_and_its_owner(monkeypatch):
    from django.contrib.auth import get_user_model

    from experiments.models import Membership, Team

    out = command(
        "create_team",
        "Reasoning RL",
        "--admin",
        "ops",
        "--email",
        "ops@example.org",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    assert "created team 'Reasoning RL' (slug reasoning-rl) with ops as its owner" in out
    assert "password" not in out  # a password given on stdin is never echoed
    team = Team.objects.get(slug="reasoning-rl")
    user = get_user_model().objects.get(username="ops")
    assert user.check_password(PASSWORD) and user.email == "ops@example.org"
    assert team.role_of(user) == Membership.Role.OWNER and team.can_write(user)


@pytest.mark.django_db
def test_create_team_generates_a_password_when_none_is_given(monkeypatch):
    from django.contrib.auth import get_user_model

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt
    out = io.StringIO()
    call_command("create_team", "Beta", "--admin", "bob", stdout=out)
    password = out.getvalue().split("(shown once): ")[1].strip()
    assert len(password) >= 20 and get_user_model().objects.get(username="bob").check_password(password)


@pytest.mark.django_db
def test_create_team_refuses_weak_passwords_duplicates_and_unintended_existing_users(
    monkeypatch, alice, team
):
    from experiments.models import Membership, Team

    with pytest.raises(CommandError, match="password refused"):
        command(
            "create_team",
            "Gamma",
            "--admin",
            "carol",
            "--password-stdin",
            stdin="123\n",
            monkeypatch=monkeypatch,
        )
    assert not Team.objects.filter(slug="gamma").exists()  # nothing half-made
    with pytest.raises(CommandError, match="exists already"):
        command(
            "create_team",
            "Alpha",
            "--admin",
            "dave",
            "--password-stdin",
            stdin=PASSWORD,
            monkeypatch=monkeypatch,
        )
    with pytest.raises(CommandError, match="pass --existing-user"):
        command("create_team", "Delta", "--admin", "alice")
    command("create_team", "Delta", "--admin", "alice", "--existing-user")
    assert Team.objects.get(slug="delta").role_of(alice) == Membership.Role.OWNER


# ------------------------------------------------------------------------------------ rotate_slurm_token


def env_file(tmp_path: Path, url: str, user: str = "slurmci", token: str = "old-token") -> Path:
    path = tmp_path / ".env"
    path.write_text(
        "# deployment settings\n"
        f"SLURM_REST_URL={url}\n"
        "SLURM_REST_API=v0.0.38\n"
        f"SLURM_REST_USER={user}\n"
        "# SLURM_REST_TOKEN=commented-out\n"
        f"SLURM_REST_TOKEN={token}\n"
        "OTHER='kept as it is'\n"
    )
    return path


def test_env_file_helpers_keep_everything_else(tmp_path):
    path = env_file(tmp_path, "http://slurm:6820")
    write_env_value(path, "SLURM_REST_TOKEN", "new")
    text = path.read_text()
    assert "SLURM_REST_TOKEN=new\n" in text and "# SLURM_REST_TOKEN=commented-out" in text
    assert read_env_file(path) == {
        "SLURM_REST_URL": "http://slurm:6820",
        "SLURM_REST_API": "v0.0.38",
        "SLURM_REST_USER": "slurmci",
        "SLURM_REST_TOKEN": "new",
        "OTHER": "kept as it is",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_env_value(path, "ADDED", "1")
    assert path.read_text().endswith("ADDED=1\n")


def test_rotation_is_refused_when_slurmrestd_cannot_be_reached(tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = env_file(tmp_path, f"http://127.0.0.1:{port}")
    before = path.read_text()
    with pytest.raises(CommandError, match="refused, nothing changed: .*cannot reach slurmrestd"):
        command(
            "rotate_slurm_token",
            "--env-file",
            str(path),
            "--token-stdin",
            stdin="new\n",
            monkeypatch=monkeypatch,
        )
    assert path.read_text() == before


def slurm_cluster_model():
    from django.apps import apps

    return next((m for m in apps.get_models() if m.__name__ == "SlurmCluster"), None)


@pytest.mark.django_db
def test_rotating_a_stored_cluster_says_clearly_when_clusters_are_not_stored():
    if slurm_cluster_model() is not None:
        pytest.skip("this checkout stores Slurm clusters in the database (tested against the local cluster)")
    with pytest.raises(CommandError, match="not stored in the database in this version.*--env-file"):
        command("rotate_slurm_token", "--cluster", "main", "--token-file", "/dev/null")


@pytest.fixture
def local_slurm():
    url, user, key = (os.environ.get(k) for k in ("SLURM_REST_URL", "SLURM_REST_USER", "SLURM_JWT_KEY_FILE"))
    if not (url and user and key and os.access(key, os.R_OK)):
        pytest.skip("needs the local Slurm cluster (make services) with a readable JWT key")
    return url, user, Path(key)


@pytest.mark.slurm
def test_rotation_against_the_local_cluster(tmp_path, local_slurm, monkeypatch):
    url, user, key = local_slurm
    path = env_file(tmp_path, url, user)

    out = command(
        "rotate_slurm_token", "--env-file", str(path), "--mint-from-key", str(key), "--lifespan", "600"
    )
    assert f"new token for {user} at {url} verified (Slurm" in out
    token = read_env_file(path)["SLURM_REST_TOKEN"]
    assert token != "old-token" and token not in out  # the token is never printed
    with SlurmClient(url, "v0.0.38", user, token=token) as client:
        assert client.ping().ok  # what was written works

    wrong_key = tmp_path / "other.key"
    wrong_key.write_bytes(os.urandom(32))
    with pytest.raises(CommandError, match="refused, nothing changed"):
        command("rotate_slurm_token", "--env-file", str(path), "--mint-from-key", str(wrong_key))
    assert read_env_file(path)["SLURM_REST_TOKEN"] == token  # the working token stayed


@pytest.mark.slurm
@pytest.mark.django_db
def test_rotation_of_a_cluster_stored_in_the_database(tmp_path, local_slurm, team):
    model = slurm_cluster_model()
    if model is None:
        pytest.skip("no SlurmCluster model in this checkout")
    url, user, key = local_slurm
    cluster = model(team=team, name="local", rest_url=url, user=user, runs_dir=str(tmp_path))
    cluster.set_token("an-expired-or-wrong-token")
    cluster.save()
    with pytest.raises(CommandError, match="does not exist"):
        command("rotate_slurm_token", "--cluster", "nope", "--mint-from-key", str(key))

    out = command("rotate_slurm_token", "--cluster", f"{team.slug}/local", "--mint-from-key", str(key))
    assert "verified" in out and "stored" in out
    cluster.refresh_from_db()
    with cluster.client() as client:
        assert client.ping().ok  # the stored token is the new one, and it works

    wrong_key = tmp_path / "other.key"
    wrong_key.write_bytes(os.urandom(32))
    stored = cluster.token_encrypted
    with pytest.raises(CommandError, match="refused, nothing changed"):
        command("rotate_slurm_token", "--cluster", "local", "--mint-from-key", str(wrong_key))
    cluster.refresh_from_db()
    assert cluster.token_encrypted == stored
