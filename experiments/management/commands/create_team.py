"""``manage.py create_team NAME --admin USERNAME``: a new team and its first administrator, in one step.

The administrator becomes the team's owner (the role that manages members, experiments and runs). A new
user's password comes from, in order: ``--password-stdin`` (one line, for scripts), a prompt when a terminal
is attached, else a random one printed once. Django's password validators apply. An existing user is only
made the owner when ``--existing-user`` says that is intended, so a typo never hands a team to the wrong
account. Everything happens in one transaction: a refused password leaves no team behind.

    manage.py create_team "Reasoning RL" --admin alice --email alice@example.org
    echo "$PASSWORD" | manage.py create_team "Reasoning RL" --slug rrl --admin alice --password-stdin
"""

from __future__ import annotations

import getpass
import secrets
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from experiments.actions import add_member
from experiments.models import Membership, Team


class Command(BaseCommand):
    help = "Create a team and its first administrator (the team's owner)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="the team's display name")
        parser.add_argument("--slug", help="the team's URL name (default: from the name)")
        parser.add_argument("--description", default="")
        parser.add_argument("--admin", required=True, help="user name of the team's first administrator")
        parser.add_argument("--email", default="", help="the administrator's e-mail (new users)")
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the new user's password from stdin"
        )
        parser.add_argument(
            "--existing-user",
            action="store_true",
            help="make an existing user the owner instead of creating one",
        )

    def handle(self, *args, **options) -> None:
        name = options["name"].strip()
        slug = options["slug"] or slugify(name)
        if not name or not slug:
            raise CommandError("the team needs a name (and a slug made of letters, digits or hyphens)")
        if Team.objects.filter(name=name).exists() or Team.objects.filter(slug=slug).exists():
            raise CommandError(f"a team named {name!r} or with the slug {slug!r} exists already")
        users = get_user_model()
        user = users.objects.filter(username=options["admin"]).first()
        if user is not None and not options["existing_user"]:
            raise CommandError(
                f"the user {options['admin']!r} exists already; pass --existing-user to make them the owner"
            )
        if user is None and options["existing_user"]:
            raise CommandError(f"there is no user {options['admin']!r}")

        generated = None
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug, description=options["description"])
            if user is None:
                user = users(username=options["admin"], email=options["email"])
                password, generated = self._password(options, user)
                user.set_password(password)
                user.save()
            add_member(team, user, Membership.Role.OWNER)
        self.stdout.write(f"created team {team.name!r} (slug {team.slug}) with {user.username} as its owner")
        if generated:
            self.stdout.write(f"password for {user.username} (shown once): {generated}")

    def _password(self, options, user) -> tuple[str, str | None]:
        """(password, the same when it was generated here else None); validated against the new user."""
        if options["password_stdin"]:
            password, generated = sys.stdin.readline().rstrip("\n"), None
        elif sys.stdin.isatty():
            password = getpass.getpass(f"Password for {user.username}: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("the passwords differ")
            generated = None
        else:
            password = generated = secrets.token_urlsafe(18)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages)) from None
        return password, generated
