"""``manage.py import_run_dir DIR``: backfill a run's metrics, events and checkpoints from its directory.

The run directory (``metrics.jsonl``, ``events.jsonl``, checkpoint events with their manifests) is the source
of truth, so this rebuilds the platform's copy through the same functions the ingestion API uses; running it
again changes nothing.

Which run:
    --run ID                    that run (its directory may have moved: DIR is read either way)
    (neither option)            the run whose ``run_dir`` is DIR
    --project TEAM/PROJECT      a run that ran offline (``or1-train run SPEC --out DIR``): creates an
      --user NAME               experiment from DIR/spec.yaml and a run of it in that project, created by
                                NAME (a writer of the team), with the outcome the directory records
"""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from experiments.actions import create_experiment_from_spec, create_run
from experiments.ingestion import import_run_dir
from experiments.models import Experiment, Project, Run, RunStatus
from or1_train.spec import SpecError, load_spec_file
from or1_train.telemetry import EVENTS_FILE, read_jsonl
from workers.wrapper import EXIT_STATUS_FILE


def offline_outcome(run_dir: Path) -> tuple[str, str, int | None]:
    """(status, reason, exit code) of a finished run directory: the wrapper's exit status, else the trainer's
    ``run_end`` event, else failed."""
    status_file = run_dir / EXIT_STATUS_FILE
    if status_file.exists():
        code = int(json.loads(status_file.read_text())["exit_code"])
        status = {0: RunStatus.SUCCEEDED, 143: RunStatus.CANCELLED}.get(code, RunStatus.FAILED)
        return status, f"imported: the trainer exited with code {code}", code
    ends = [e for e in read_jsonl(run_dir / EVENTS_FILE) if e.get("kind") == "run_end"]
    ended = ends[-1].get("data", {}).get("status") if ends else None
    if ended in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        return ended, f"imported: the trainer's run_end event says {ended}", None
    return RunStatus.FAILED, "imported: the directory records no end (the run stopped early or still runs)", None


def create_offline_run(run_dir: Path, project: Project, user) -> Run:
    try:
        spec = load_spec_file(run_dir / "spec.yaml")
    except (SpecError, OSError) as exc:
        raise CommandError(f"{run_dir / 'spec.yaml'} is not a readable run spec: {exc}") from None
    name = f"{spec.name} (imported from {run_dir.name})"
    experiment = Experiment.objects.filter(project=project, name=name).first() or create_experiment_from_spec(
        project=project, user=user, spec=spec.model_dump(mode="json"), name=name, tags=["imported"]
    )
    run = create_run(experiment, user=user)
    run.run_dir = str(run_dir)
    run.save(update_fields=["run_dir"])
    status, reason, code = offline_outcome(run_dir)
    path = {
        RunStatus.SUCCEEDED: [RunStatus.STARTING, RunStatus.RUNNING, RunStatus.SUCCEEDED],
        RunStatus.CANCELLED: [RunStatus.STARTING, RunStatus.RUNNING, RunStatus.CANCELLING, RunStatus.CANCELLED],
        RunStatus.FAILED: [RunStatus.STARTING, RunStatus.RUNNING, RunStatus.FAILED],
    }[status]
    for step in path:
        run.transition_to(
            step, reason=reason if step == status else "imported", exit_code=code if step == status else None
        )
    return run


class Command(BaseCommand):
    help = "Backfill a run's metrics, events and checkpoints from its run directory (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dir", type=Path, help="the run directory (metrics.jsonl, events.jsonl, checkpoints/)")
        parser.add_argument("--run", type=int, help="the run to fill (default: the run whose run_dir is DIR)")
        parser.add_argument("--project", help="TEAM/PROJECT slugs: create a run there for an offline run directory")
        parser.add_argument("--user", help="with --project: the user the imported run is created by")

    def handle(self, *args, **options) -> None:
        run_dir = options["dir"].expanduser().resolve()
        if not (run_dir / "metrics.jsonl").exists() and not (run_dir / EVENTS_FILE).exists():
            raise CommandError(f"{run_dir} has neither metrics.jsonl nor {EVENTS_FILE}")
        with transaction.atomic():
            run = self._run(run_dir, options)
            summary = import_run_dir(run, run_dir)
        metrics, events = summary["metrics"], summary["events"]
        self.stdout.write(
            f"run {run.pk}: {metrics['stored']} new of {metrics['received']} metric points"
            + (f" ({metrics['skipped']} not storable here)" if metrics["skipped"] else "")
            + f", {events['stored']} new of {events['received']} events"
        )
        for problem in summary["refused"]:
            self.stderr.write(f"refused {problem}")

    def _run(self, run_dir: Path, options) -> Run:
        if options["run"] is not None:
            run = Run.objects.filter(pk=options["run"]).first()
            if run is None:
                raise CommandError(f"there is no run {options['run']}")
            return run
        if options["project"]:
            team_slug, _, project_slug = options["project"].partition("/")
            project = Project.objects.filter(team__slug=team_slug, slug=project_slug).first()
            if project is None:
                raise CommandError(f"there is no project {options['project']!r} (give TEAM/PROJECT slugs)")
            user = get_user_model().objects.filter(username=options["user"] or "").first()
            if user is None:
                raise CommandError("--project needs --user NAME, a member of the team who may create runs")
            return create_offline_run(run_dir, project, user)
        run = Run.objects.filter(run_dir=str(run_dir)).first()
        if run is None:
            raise CommandError(f"no run has the directory {run_dir}: pass --run ID, or --project and --user")
        return run
