"""``manage.py prune_checkpoints``: delete checkpoints that the projects' retention policies do not keep.

    manage.py prune_checkpoints --dry-run                      # every project with a policy: what would go
    manage.py prune_checkpoints --project reasoning/math-rl    # delete, for one project
    manage.py prune_checkpoints --run 42 --dry-run

Policies are set per project (``manage.py set_retention`` or the admin); projects without one are left
alone. For each run the plan (``experiments/retention.py``) keeps the newest checkpoint, the last K and the
best N by the policy's metric, and deletes the rest; ``--dry-run`` prints the same plan and deletes
nothing, so its ``delete`` lines are exactly what the real run removes. Runs that are still active are
skipped unless ``--include-active`` is given (their trainer writes and prunes checkpoints itself, and the
newest is never touched either way). Each real deletion is recorded as an event on its run.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from experiments import retention
from experiments.management.commands.set_retention import project_by_path
from experiments.models import RetentionPolicy, Run, RunEvent


class Command(BaseCommand):
    help = "Delete checkpoints outside each project's retention policy (newest and best are always kept)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", action="append", default=[], help="TEAM/PROJECT (repeatable)")
        parser.add_argument("--run", action="append", type=int, default=[], help="a run id (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
        parser.add_argument(
            "--include-active", action="store_true", help="prune runs that are still active too"
        )

    def handle(self, *args, **options) -> None:
        runs = self._runs(options)
        dry = options["dry_run"]
        planned = freed = 0
        for run in runs:
            policy = retention.Policy.of(run.experiment.project.retention_policy)
            label = f"run {run.pk} ({run.experiment.project}, {run.status})"
            if not run.is_terminal and not options["include_active"]:
                self.stdout.write(f"{label}: skipped, still active (--include-active prunes it too)")
                continue
            plan = retention.plan(Path(run.run_dir), policy)
            if not plan.decisions:
                self.stdout.write(f"{label}: no checkpoints in {run.run_dir}")
                continue
            self.stdout.write(
                f"{label}: {len(plan.decisions)} checkpoints, keep {len(plan.keep)},"
                f" delete {len(plan.delete)}"
                f" ({retention.human_bytes(plan.bytes_freed)}) by {policy.metric_label}"
            )
            for decision in plan.decisions:
                self.stdout.write(f"  {decision.describe()}")
            planned += len(plan.delete)
            if dry or not plan.delete:
                continue
            deleted = retention.apply(plan)
            for path in deleted:
                self.stdout.write(f"  deleted {path}")
            gone = [d for d in plan.delete if d.path in deleted]
            freed += sum(d.size_bytes for d in gone)
            RunEvent.objects.create(
                run=run,
                kind=RunEvent.Kind.INFO,
                message=f"retention: deleted {len(gone)} checkpoints "
                f"({', '.join(d.path.name for d in gone)})",
                data={"deleted": [d.path.name for d in gone], "bytes": sum(d.size_bytes for d in gone)},
            )
        if dry:
            self.stdout.write(f"dry run: {planned} checkpoints would be deleted; nothing was changed")
        else:
            self.stdout.write(f"deleted {planned} checkpoints, {retention.human_bytes(freed)} freed")

    def _runs(self, options) -> list[Run]:
        runs = Run.objects.exclude(run_dir="").select_related("experiment__project__team")
        if options["run"]:
            chosen = list(runs.filter(pk__in=options["run"]).order_by("pk"))
            missing = sorted(set(options["run"]) - {r.pk for r in chosen})
            if missing:
                raise CommandError(f"no run (with a run directory) has the id {', '.join(map(str, missing))}")
            without = [
                r for r in chosen if not RetentionPolicy.objects.filter(project=r.experiment.project).exists()
            ]
            if without:
                raise CommandError(
                    f"the project {without[0].experiment.project} of run {without[0].pk} has no retention "
                    "policy (manage.py set_retention TEAM/PROJECT ...)"
                )
            return chosen
        if options["project"]:
            projects = [project_by_path(path) for path in options["project"]]
            for project in projects:
                if not RetentionPolicy.objects.filter(project=project).exists():
                    raise CommandError(
                        f"{project} has no retention policy (manage.py set_retention {project} --keep-last K)"
                    )
            return list(runs.filter(experiment__project__in=projects).order_by("pk"))
        return list(runs.filter(experiment__project__retention_policy__isnull=False).order_by("pk"))
