"""``manage.py import_run_dir``: a run directory written by the trainer's own sink, imported twice."""

from __future__ import annotations

import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments.models import Checkpoint, EvaluationResult, Experiment, MetricPoint, Run, RunStatus
from or1_train.spec import parse_spec
from or1_train.telemetry import JsonlSink

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(settings, tmp_path, experiment, alice):
    """A queued run whose directory is under the test's tmp dir, never the repository's var/runs."""
    from experiments.actions import create_run

    settings.OR1_RUNS_DIR = tmp_path / "runs"
    return create_run(experiment, user=alice)


def write_run_dir(run_dir: Path, spec_data: dict, *, resumed_at: int | None = None, end: str | None = "succeeded"):
    """Five steps of two metrics, stage and checkpoint events, an evaluation, as the trainer writes them.

    With ``resumed_at``, the directory is that of a run resumed from that step: the lost attempt's later
    steps were truncated from metrics.jsonl by the trainer, and a ``resume`` event marks where it went on.
    """
    (run_dir).mkdir(parents=True)
    (run_dir / "spec.yaml").write_text(parse_spec(spec_data).to_yaml())
    sink, now = JsonlSink(run_dir), time.time()

    def event(kind, step, offset, **data):
        sink.event({"kind": kind, "message": f"{kind} {step}", "step": step, "at": now + offset, "data": data})

    event("run_start", 0, 0.0, total_steps=5, resumed=False)
    event("stage_start", 0, 0.1, stage=0, name="short")
    if resumed_at:
        event("resume", resumed_at, 0.2)
    for step in range(1, 6):
        sink.metrics(
            {
                "step": step,
                "stage": 0 if step <= 3 else 1,
                "wall_time": now + step,
                "metrics": {"loss": 1 / step, "reward": step / 10},
            }
        )
        path = str(run_dir / "checkpoints" / f"step-{step:06d}")
        manifest = {"step": step, "stage": 0, "metrics": {"loss": 1 / step}, "files": [], "size_bytes": 10}
        event(
            "checkpoint",
            step,
            step + 0.5,
            path=path,
            model_dir=path + "/model",
            stage=0,
            size_bytes=10,
            manifest=manifest,
        )
    event("stage_start", 3, 3.7, stage=1, name="long")
    event(
        "eval",
        5,
        5.6,
        benchmark="arith",
        k=2,
        num_samples=16,
        num_problems=8,
        avg_at_k=0.5,
        pass_at_k=0.75,
        temperature=1.0,
    )
    if end:
        event("run_end", 5, 5.7, status=end)
    sink.close()
    return run_dir


def test_import_fills_a_run_and_a_second_import_changes_nothing(run, spec_data, tmp_path):
    run_dir = write_run_dir(tmp_path / "r", spec_data)
    out = StringIO()
    call_command("import_run_dir", str(run_dir), "--run", str(run.pk), stdout=out)
    assert out.getvalue().strip() == f"run {run.pk}: 10 new of 10 metric points, 10 new of 10 events"

    points = {(p.name, p.step): p.value for p in MetricPoint.objects.filter(run=run)}
    assert points == {
        (name, s): (1 / s if name == "loss" else s / 10) for s in range(1, 6) for name in ("loss", "reward")
    }
    assert sorted(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == [1, 2, 3, 4, 5]
    assert EvaluationResult.objects.get(run=run).checkpoint == Checkpoint.objects.get(run=run, step=5)
    assert all(stage.started_at for stage in run.stages.all())
    run.refresh_from_db()
    assert (run.current_step, run.current_stage, run.status) == (5, 1, RunStatus.QUEUED)  # backfill, not lifecycle

    events_before = run.events.count()
    again = StringIO()
    call_command("import_run_dir", str(run_dir), "--run", str(run.pk), stdout=again)
    assert again.getvalue().strip() == f"run {run.pk}: 0 new of 10 metric points, 0 new of 10 events"
    assert MetricPoint.objects.filter(run=run).count() == 10 and run.events.count() == events_before
    assert Checkpoint.objects.count() == 5 and EvaluationResult.objects.count() == 1


def test_the_run_is_found_by_its_directory(run, spec_data, tmp_path):
    write_run_dir(Path(run.run_dir), spec_data)
    call_command("import_run_dir", run.run_dir, stdout=StringIO())
    assert MetricPoint.objects.filter(run=run).count() == 10
    stray = write_run_dir(tmp_path / "stray", spec_data)
    with pytest.raises(CommandError, match="no run has the directory .*stray: pass --run ID"):
        call_command("import_run_dir", str(stray), stdout=StringIO())
    with pytest.raises(CommandError, match="has neither metrics.jsonl nor events.jsonl"):
        call_command("import_run_dir", str(tmp_path), stdout=StringIO())


def test_a_resumed_directory_imports_continuously(run, spec_data, tmp_path):
    """The resume event truncates before the file's (already truncated) metrics go in: nothing is lost."""
    run_dir = write_run_dir(tmp_path / "r", spec_data, resumed_at=2)
    call_command("import_run_dir", str(run_dir), "--run", str(run.pk), stdout=StringIO())
    steps = MetricPoint.objects.filter(run=run, name="loss").values_list("step", flat=True)
    assert sorted(steps) == [1, 2, 3, 4, 5]


def test_a_bad_record_is_reported_and_the_rest_is_imported(run, spec_data, tmp_path):
    run_dir = write_run_dir(tmp_path / "r", spec_data)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 6, "stage": 1, "metrics": {"loss": "very"}}\n')
    out, err = StringIO(), StringIO()
    call_command("import_run_dir", str(run_dir), "--run", str(run.pk), stdout=out, stderr=err)
    assert "10 new of 10 metric points" in out.getvalue()
    assert "refused metrics.jsonl: records[0].metrics.loss: must be a number" in err.getvalue()


def test_an_offline_run_becomes_a_run_of_the_project(project, alice, spec_data, tmp_path):
    run_dir = write_run_dir(tmp_path / "offline-1", spec_data, end=None)
    command = ["import_run_dir", str(run_dir), "--project", f"{project.team.slug}/{project.slug}"]
    with pytest.raises(CommandError, match="--project needs --user"):
        call_command(*command, stdout=StringIO())
    call_command(*command, "--user", "alice", stdout=StringIO())

    run = Run.objects.get()
    assert run.experiment == Experiment.objects.get(name="tiny (imported from offline-1)", project=project)
    assert run.run_dir == str(run_dir) and run.created_by == alice and run.total_steps == 5
    assert run.status == RunStatus.FAILED and "records no end" in run.status_reason
    assert MetricPoint.objects.filter(run=run).count() == 10

    finished = write_run_dir(tmp_path / "offline-2", spec_data, end="succeeded")
    call_command("import_run_dir", str(finished), "--project", "alpha/math-rl", "--user", "alice", stdout=StringIO())
    assert Run.objects.get(run_dir=str(finished)).status == RunStatus.SUCCEEDED
