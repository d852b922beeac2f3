"""Checkpoint retention on real run directories: checkpoints written with ``or1_train.checkpoint``'s own
helpers (staging directory, manifest with checksums, atomic rename) and scores in ``metrics.jsonl`` as the
trainer's JSONL sink writes them. Pruning never deletes the newest or the best checkpoint, and the dry run's
``delete`` lines are exactly the directories the real run removes.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments import retention
from or1_train import checkpoint as ckpt
from or1_train.telemetry import JsonlSink

#: eval score (val/math/avg@4) at each checkpointed step; step 20 is the best, step 60 the newest
SCORES = {10: 0.20, 20: 0.90, 30: 0.50, 40: 0.40, 50: 0.30, 60: 0.10}


def write_run_dir(
    run_dir: Path, scores: dict[int, float | None], *, train_metric: str = "critic/score/mean"
) -> Path:
    """Checkpoints at each step of ``scores`` (small but real files) and the metrics the trainer would log."""
    sink = JsonlSink(run_dir)
    for step, score in sorted(scores.items()):
        tmp = ckpt.staging_dir(run_dir, step)
        (tmp / ckpt.MODEL_DIR).mkdir()
        (tmp / ckpt.MODEL_DIR / "model.safetensors").write_bytes(bytes([step % 256]) * (1000 + step))
        (tmp / ckpt.OPTIMIZER_FILE).write_bytes(b"\0" * 500)
        (tmp / ckpt.TRAINER_STATE).write_text(json.dumps({"step": step, "stage": 0}))
        ckpt.write_manifest(tmp, step=step, stage=0, stage_name="short", metrics={train_metric: step / 100})
        ckpt.finalize(tmp, run_dir, step)
        sink.metrics(
            {"step": step, "stage": 0, "metrics": {train_metric: step / 100, "actor/entropy_loss": 0.4}}
        )
        if score is not None:  # the evaluation record the trainer logs after saving
            sink.metrics(
                {"step": step, "stage": 0, "metrics": {"val/math/avg@4": score, "val/math/pass@4": 0.99}}
            )
    sink.close()
    return run_dir


def steps_on_disk(run_dir: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in ckpt.list_checkpoints(run_dir)]


def test_keeps_newest_last_k_and_best_and_deletes_exactly_the_plan(tmp_path):
    run_dir = write_run_dir(tmp_path / "run", SCORES)
    plan = retention.plan(run_dir, retention.Policy(keep_last=2, keep_best=1))
    reasons = {d.step: d.reasons for d in plan.decisions}
    assert reasons[60] == ("newest",) and reasons[50] == ("last 2",)
    assert reasons[20] == ("best mean of val/*/avg@k",)
    assert [d.step for d in plan.delete] == [10, 30, 40]
    assert plan.bytes_freed == sum(d.size_bytes for d in plan.delete) > 3 * 1500

    deleted = retention.apply(plan)
    assert deleted == [d.path for d in plan.delete]
    assert steps_on_disk(run_dir) == [20, 50, 60]
    for step in (20, 50, 60):  # what is kept is whole: every file still matches its manifest
        assert ckpt.verify(run_dir / "checkpoints" / ckpt.checkpoint_name(step)).step == step
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert ckpt.newest_valid(run_dir).step == 60  # a resume still starts from the newest


def test_the_newest_and_the_best_survive_the_tightest_policy(tmp_path):
    run_dir = write_run_dir(tmp_path / "run", SCORES)
    retention.apply(retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=1)))
    assert steps_on_disk(run_dir) == [20, 60]
    # Run it again: nothing more goes.
    again = retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=1))
    assert again.delete == [] and [d.step for d in again.keep] == [20, 60]


def test_best_can_be_the_newest_and_lower_can_be_better(tmp_path):
    run_dir = write_run_dir(tmp_path / "run", {10: 0.3, 20: 0.1, 30: 0.2, 40: 0.9})
    best_is_newest = retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=1))
    assert [d.step for d in best_is_newest.keep] == [40]
    assert best_is_newest.keep[0].reasons == ("newest", "best mean of val/*/avg@k")
    lowest = retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=2, higher_is_better=False))
    assert {d.step: d.reasons for d in lowest.keep} == {20: ("best #1",), 30: ("best #2",), 40: ("newest",)}


def test_a_named_metric_from_the_manifest_ranks_and_missing_scores_rank_nothing(tmp_path):
    run_dir = write_run_dir(
        tmp_path / "run", {10: None, 20: None, 30: None}, train_metric="critic/score/mean"
    )
    # No evaluation anywhere: only the newest K are kept, nothing counts as best.
    unscored = retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=1))
    assert [d.step for d in unscored.keep] == [30] and all(d.score is None for d in unscored.decisions)
    # A training metric named by the policy is read from the manifests (and metrics.jsonl): step 30 is best.
    named = retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=1, metric="critic/score/mean"))
    assert named.keep[0].reasons == ("newest", "best critic/score/mean") and named.keep[0].score == 0.30


def test_a_checkpoint_with_an_unreadable_manifest_is_left_alone(tmp_path):
    run_dir = write_run_dir(tmp_path / "run", SCORES)
    (run_dir / "checkpoints" / "step-000030" / ckpt.MANIFEST).write_text("{ torn")
    plan = retention.plan(run_dir, retention.Policy(keep_last=1, keep_best=1))
    assert [d.step for d in plan.delete] == [10, 40, 50]
    assert "manifest unreadable: left alone" in {d.step: d.reasons for d in plan.decisions}[30]


def test_a_policy_must_keep_the_newest_and_the_best():
    with pytest.raises(ValueError, match="at least the newest and the best"):
        retention.Policy(keep_last=0)
    with pytest.raises(ValueError):
        retention.Policy(keep_last=3, keep_best=0)


# --------------------------------------------------------------------------------------------- commands


def finished(run, run_dir: Path):
    from experiments.models import RunStatus

    run.run_dir = str(run_dir)
    run.save(update_fields=["run_dir"])
    for status in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.SUCCEEDED):
        run.transition_to(status, reason="test")
    return run


def command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


DELETE_LINE = re.compile(r"^  delete (\S+) ")


@pytest.mark.django_db
def test_dry_run_lists_exactly_what_the_real_run_deletes(tmp_path, run):
    from experiments.models import RunEvent

    run_dir = write_run_dir(tmp_path / "run", SCORES)
    finished(run, run_dir)
    project = run.experiment.project
    created = command("set_retention", str(project), "--keep-last", "2", "--metric", "val/math/avg@4")
    assert "created" in created and "keep last 2, best 1 by highest val/math/avg@4" in created

    dry = command("prune_checkpoints", "--dry-run")
    listed = [m.group(1) for line in dry.splitlines() if (m := DELETE_LINE.match(line))]
    assert sorted(Path(p).name for p in listed) == ["step-000010", "step-000030", "step-000040"]
    assert "dry run: 3 checkpoints would be deleted" in dry
    assert steps_on_disk(run_dir) == list(SCORES)  # the dry run deleted nothing

    before = set(ckpt.list_checkpoints(run_dir))
    real = command("prune_checkpoints", "--project", str(project))
    gone = before - set(ckpt.list_checkpoints(run_dir))
    assert sorted(map(str, gone)) == sorted(listed)
    assert sorted(
        line.removeprefix("  deleted ") for line in real.splitlines() if line.startswith("  deleted ")
    ) == (sorted(listed))
    assert steps_on_disk(run_dir) == [20, 50, 60]
    event = RunEvent.objects.filter(run=run, message__startswith="retention:").get()
    assert event.data["deleted"] == ["step-000010", "step-000030", "step-000040"]


@pytest.mark.django_db
def test_projects_without_a_policy_and_active_runs_are_left_alone(tmp_path, run, experiment):
    from experiments.actions import create_run
    from experiments.models import RunStatus

    run_dir = write_run_dir(tmp_path / "run", SCORES)
    finished(run, run_dir)
    assert "deleted 0 checkpoints" in command("prune_checkpoints")  # no policy anywhere: nothing is pruned
    with pytest.raises(CommandError, match="has no retention policy"):
        command("prune_checkpoints", "--run", str(run.pk))

    active = create_run(experiment, user=run.created_by)
    active.run_dir = str(write_run_dir(tmp_path / "active", SCORES))
    active.save(update_fields=["run_dir"])
    active.transition_to(RunStatus.STARTING, reason="test")
    command("set_retention", str(run.experiment.project), "--keep-last", "1")
    out = command("prune_checkpoints", "--run", str(active.pk))
    assert "skipped, still active" in out and steps_on_disk(Path(active.run_dir)) == list(SCORES)
    command("prune_checkpoints", "--run", str(active.pk), "--include-active")
    assert steps_on_disk(Path(active.run_dir)) == [20, 60]


@pytest.mark.django_db
def test_set_retention_shows_updates_validates_and_removes(project):
    path = str(project)
    assert "has no retention policy" in command("set_retention", path)
    command("set_retention", path, "--keep-best", "2", "--lower-is-better")
    assert "keep last 3, best 2 by lowest mean val/*/avg@k" in command("set_retention", path)
    with pytest.raises(CommandError, match="--keep-last must be at least 1"):
        command("set_retention", path, "--keep-last", "0")
    with pytest.raises(CommandError, match="no project"):
        command("set_retention", "nope/nothing")
    assert "no longer pruned" in command("set_retention", path, "--remove")
