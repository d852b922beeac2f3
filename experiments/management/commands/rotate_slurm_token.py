"""``manage.py rotate_slurm_token``: replace a Slurm cluster's JWT, after checking that the new one works.

The new token is pinged against the cluster's slurmrestd (``workers.slurm.SlurmClient``) with the cluster's
user before anything is stored, so a wrong, expired or other-user token is refused with Slurm's own message
and the old one stays in place. The token itself is never printed.

Where the new token comes from (one of):
    --token-stdin               one line on stdin (``scontrol token username=or1 lifespan=... | ...``)
    --token-file PATH           the file's content, e.g. a secret mounted by the orchestrator
    --mint-from-key KEY         sign one here from the cluster's HS256 key, like ``scontrol token`` does
      [--lifespan SECONDS]      (default one day)

Where it goes:
    --env-file PATH             the cluster configured by SLURM_REST_URL / _API / _USER (read from that file,
                                else from the environment): its ``SLURM_REST_TOKEN=`` line is replaced (or
                                added) in place, the file kept private (0600). Restart web, worker and beat.
    --cluster TEAM/NAME         a cluster stored in the database (``experiments.models.SlurmCluster``; NAME
                                alone when only one team has a cluster of that name). The model offers
                                ``user``, ``client(token=...)`` (a SlurmClient for a token to try) and
                                ``set_token(token)``. Where no such model is installed, this option stops
                                with an error saying so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from or1platform.readiness import SLURM_MODEL_NAME
from workers.slurm import SlurmClient, SlurmError
from workers.slurm.tokens import load_key, mint_token

TOKEN_VARIABLE = "SLURM_REST_TOKEN"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments, blanks and ``export`` prefixes allowed; surrounding quotes removed)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def write_env_value(path: Path, key: str, value: str) -> None:
    """Replace the line assigning ``key`` (or append one), atomically, leaving the file readable by its owner
    only; every other line stays as it was."""
    lines = path.read_text().splitlines()
    assignment = f"{key}={value}"
    for index, line in enumerate(lines):
        if line.strip().removeprefix("export ").split("=", 1)[
            0
        ].strip() == key and not line.lstrip().startswith("#"):
            lines[index] = assignment
            break
    else:
        lines.append(assignment)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Replace a Slurm cluster's JWT after checking it with a ping through slurmrestd."

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--token-stdin", action="store_true", help="read the new token from stdin")
        source.add_argument("--token-file", type=Path, help="read the new token from this file")
        source.add_argument(
            "--mint-from-key", type=Path, metavar="KEY", help="mint the token from the HS256 key"
        )
        parser.add_argument(
            "--lifespan", type=int, default=86400, help="seconds a minted token lives (86400)"
        )
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--env-file", type=Path, help="the env file holding SLURM_REST_TOKEN")
        target.add_argument("--cluster", help="a Slurm cluster stored in the database, by name")

    def handle(self, *args, **options) -> None:
        if options["cluster"]:
            self._rotate_stored(options)
        else:
            self._rotate_env_file(options)

    def _token(self, options, user: str) -> str:
        if options["mint_from_key"]:
            try:
                return mint_token(load_key(options["mint_from_key"]), user, options["lifespan"])
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot mint a token from {options['mint_from_key']}: {exc}") from None
        raw = sys.stdin.readline() if options["token_stdin"] else options["token_file"].read_text()
        token = raw.strip().removeprefix("SLURM_JWT=")  # `scontrol token` prints SLURM_JWT=<token>
        if not token:
            raise CommandError("the new token is empty")
        return token

    def _verify(self, client: SlurmClient, where: str) -> str:
        try:
            ping = client.ping()
        except SlurmError as exc:
            raise CommandError(f"the new token was refused, nothing changed: {exc}") from None
        finally:
            client.close()
        if not ping.ok:
            raise CommandError(f"slurmrestd at {where} answered, but no slurmctld responds; nothing changed")
        return f"Slurm {ping.slurm_release or '?'} via {ping.api_version}"

    def _rotate_env_file(self, options) -> None:
        path: Path = options["env_file"]
        if not path.is_file():
            raise CommandError(f"{path} does not exist (the env file that holds {TOKEN_VARIABLE})")
        config = os.environ | read_env_file(path)
        url, user = config.get("SLURM_REST_URL"), config.get("SLURM_REST_USER")
        if not url or not user:
            raise CommandError(f"{path} (or the environment) must set SLURM_REST_URL and SLURM_REST_USER")
        token = self._token(options, user)
        version = config.get("SLURM_REST_API") or "v0.0.38"
        answer = self._verify(SlurmClient(url, version, user, token=token), url)
        write_env_value(path, TOKEN_VARIABLE, token)
        self.stdout.write(
            f"new token for {user} at {url} verified ({answer}); written to {path}. "
            "Restart web, worker and beat to use it (docker compose up -d)."
        )

    def _rotate_stored(self, options) -> None:
        model = next((m for m in apps.get_models() if m.__name__ == SLURM_MODEL_NAME), None)
        if model is None:
            raise CommandError(
                "Slurm clusters are not stored in the database in this version (no SlurmCluster model is "
                "installed). Rotate the token of the cluster configured by SLURM_REST_* with --env-file PATH."
            )
        wanted = options["cluster"]
        clusters = list(model.objects.all())
        matches = [c for c in clusters if str(c) == wanted] or [c for c in clusters if c.name == wanted]
        if len(matches) != 1:
            names = ", ".join(str(c) for c in clusters) or "none"
            problem = "is ambiguous: give TEAM/NAME" if matches else "does not exist"
            raise CommandError(f"the Slurm cluster {wanted!r} {problem} (configured: {names})")
        cluster = matches[0]
        missing = [name for name in ("client", "set_token") if not callable(getattr(cluster, name, None))]
        if missing:
            raise CommandError(
                f"{model.__name__} has no {' or '.join(missing)}() method to rotate a token with"
            )
        token = self._token(options, cluster.user)
        answer = self._verify(cluster.client(token=token), str(cluster))
        cluster.set_token(token)
        self.stdout.write(f"new token for Slurm cluster {cluster} verified ({answer}) and stored")
