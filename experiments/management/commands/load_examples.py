"""Load the example run specs (``examples/*.yaml``) as experiments of a "Demo" team's "Demo" project.

Idempotent: an example becomes the experiment named after its spec's ``name``; running the command again
updates that experiment's spec from the file instead of adding another. Every file is validated with the
trainer's own contract first, and an invalid one stops the command with its field paths.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from experiments.models import Experiment, Project, Team
from or1_train.spec import SpecError, load_spec_file

DEMO_TEAM = "Demo"
DEMO_PROJECT = "Demo"
EXAMPLE_TAG = "example"


def demo_project() -> Project:
    team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": DEMO_TEAM})
    project, _ = Project.objects.get_or_create(
        team=team, slug="demo", defaults={"name": DEMO_PROJECT, "description": "The example run specs."}
    )
    return project


def load_examples(directory: Path) -> list[tuple[Experiment, str]]:
    """Create or refresh one experiment per example file; returns (experiment, created|updated|unchanged)."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise CommandError(f"no example specs (*.yaml) in {directory}")
    specs = {}
    for path in files:
        try:
            parsed = load_spec_file(path)
        except SpecError as exc:
            raise CommandError(
                f"{path} is not a valid run spec:\n" + "\n".join(f"  {e}" for e in exc.errors)
            ) from None
        if parsed.name in specs:
            raise CommandError(f"{path} and {specs[parsed.name][0]} both name their spec {parsed.name!r}")
        # Keep what the file says (not every default) so the experiment page shows the example as written.
        fields = {
            "spec": yaml.safe_load(path.read_text(encoding="utf-8")),
            "description": parsed.description,
            "tags": [EXAMPLE_TAG],
        }
        specs[parsed.name] = (path, fields)
    results = []
    with transaction.atomic():
        project = demo_project()
        for name, (_path, fields) in specs.items():
            experiment, created = Experiment.objects.get_or_create(
                project=project, name=name, defaults=fields
            )
            if created:
                state = "created"
            elif all(getattr(experiment, key) == value for key, value in fields.items()):
                state = "unchanged"
            else:
                for key, value in fields.items():
                    setattr(experiment, key, value)
                experiment.save()
                state = "updated"
            results.append((experiment, state))
    return results


class Command(BaseCommand):
    help = "Load examples/*.yaml as experiments of the Demo team's Demo project (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dir",
            type=Path,
            default=None,
            help=f"folder of spec files (default: {settings.OR1_EXAMPLES_DIR})",
        )

    def handle(self, *args, **options) -> None:
        directory = options["dir"] or Path(settings.OR1_EXAMPLES_DIR)
        for experiment, state in load_examples(directory):
            self.stdout.write(f"{state} experiment {experiment.name!r} in {experiment.project}")
