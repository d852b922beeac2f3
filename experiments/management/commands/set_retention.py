"""``manage.py set_retention TEAM/PROJECT``: show, set or remove a project's checkpoint retention policy.

    manage.py set_retention reasoning/math-rl --keep-last 3 --keep-best 2 --metric val/aime24/avg@8
    manage.py set_retention reasoning/math-rl             # show it
    manage.py set_retention reasoning/math-rl --remove    # never prune this project again

Only the options given change; a new policy starts from the model's defaults (last 3, best 1 by the mean of
every ``val/<set>/avg@<k>``). ``prune_checkpoints`` applies the policies.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from experiments.models import Project, RetentionPolicy


def project_by_path(path: str) -> Project:
    team_slug, _, project_slug = path.partition("/")
    project = Project.objects.filter(team__slug=team_slug, slug=project_slug).select_related("team").first()
    if project is None:
        raise CommandError(f"there is no project {path!r} (give TEAM/PROJECT slugs)")
    return project


class Command(BaseCommand):
    help = "Show, set or remove a project's checkpoint retention policy."

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="TEAM/PROJECT slugs")
        parser.add_argument(
            "--keep-last", type=int, help="keep the newest K checkpoints of each run (K >= 1)"
        )
        parser.add_argument("--keep-best", type=int, help="keep the N best by the metric (N >= 1)")
        parser.add_argument("--metric", help="the ranking metric; '' for the mean of val/*/avg@k")
        direction = parser.add_mutually_exclusive_group()
        direction.add_argument("--higher-is-better", dest="higher", action="store_const", const=True)
        direction.add_argument("--lower-is-better", dest="higher", action="store_const", const=False)
        parser.add_argument(
            "--remove", action="store_true", help="delete the policy: the project is not pruned"
        )

    def handle(self, *args, **options) -> None:
        project = project_by_path(options["project"])
        existing = RetentionPolicy.objects.filter(project=project).first()
        if options["remove"]:
            if existing is None:
                raise CommandError(f"{project} has no retention policy")
            existing.delete()
            self.stdout.write(
                f"removed the retention policy of {project}: its checkpoints are no longer pruned"
            )
            return
        changes = {
            field: options[option]
            for option, field in (
                ("keep_last", "keep_last"),
                ("keep_best", "keep_best"),
                ("metric", "best_metric"),
                ("higher", "higher_is_better"),
            )
            if options[option] is not None
        }
        for field in ("keep_last", "keep_best"):
            if field in changes and changes[field] < 1:
                raise CommandError(f"--{field.replace('_', '-')} must be at least 1")
        if not changes:
            self.stdout.write(
                str(existing) if existing else f"{project} has no retention policy (never pruned)"
            )
            return
        policy = existing or RetentionPolicy(project=project)
        for field, value in changes.items():
            setattr(policy, field, value)
        policy.full_clean()
        policy.save()
        self.stdout.write(f"{'updated' if existing else 'created'}: {policy}")
