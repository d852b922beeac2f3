"""Sweeps: expansion of grid/random/seeds, validation before launch, the concurrency limit, cancel all.

Launching goes through ``actions.launch_run``, which sends its Celery task on commit. These tests run inside
pytest-django's transaction, which never commits, and they capture the on-commit callbacks without running
them (``django_capture_on_commit_callbacks(execute=False)``): each captured callback is one launch that
would reach the broker, so nothing ever lands in a real queue and no trainer starts.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from experiments import sweeps
from experiments.actions import add_member
from experiments.models import AuditEntry, Membership, RunStatus, Sweep, SweepPoint
from or1_train.spec import SpecError


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The fixtures' users get a password each; the production hasher takes a second per user on 2 cores."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


GRID_3X2 = {"grid": {"entropy.target": [0.1, 0.2, 0.3], "stages[0].max_response_tokens": [32, 64]}}


def finish(run) -> None:
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.SUCCEEDED)


def test_a_3x2_grid_with_2_seeds_makes_12_runs_at_most_concurrency_at_a_time(
    experiment, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        sweep = sweeps.create_sweep(experiment, alice, name="s", space=GRID_3X2, seeds=2, concurrency=5)
    assert sweep.points.count() == 12
    assert len(sent) == 5 and sweep.runs.count() == 5 and sweep.status == Sweep.Status.RUNNING
    combos = {(p.overrides["entropy.target"], p.overrides["stages[0].max_response_tokens"], p.overrides["seed"])
              for p in sweep.points.all()}
    assert len(combos) == 12
    assert {p.configuration for p in sweep.points.all()} == set(range(6))

    assert sweeps.advance_sweep(sweep) == []  # every slot is taken
    for _ in range(10):
        running = list(sweep.runs.filter(status=RunStatus.QUEUED))
        assert len(running) <= 5
        if not running:
            break
        finish(running[0])
        with django_capture_on_commit_callbacks(execute=False):
            sweeps.advance_sweep(sweep)
        assert sweep.runs.active().count() <= 5
    for run in sweep.runs.active():
        finish(run)
    sweeps.advance_sweep(sweep)
    sweep.refresh_from_db()
    assert sweep.runs.count() == 12 and sweep.status == Sweep.Status.FINISHED
    for point in sweep.points.select_related("run"):
        frozen = point.run.spec_as_launched
        assert frozen["entropy"]["target"] == point.overrides["entropy.target"]
        assert frozen["stages"][0]["max_response_tokens"] == point.overrides["stages[0].max_response_tokens"]
        assert frozen["seed"] == point.overrides["seed"] and point.run.experiment_id == experiment.pk
    assert sorted({p.overrides["seed"] for p in sweep.points.all()}) == [0, 1]


def test_an_invalid_point_is_reported_and_never_launched(experiment, alice, django_capture_on_commit_callbacks):
    # stage 1 has max_response_tokens 128, and a later stage may not be shorter than an earlier one
    space = {"grid": {"stages[0].max_response_tokens": [64, 256], "entropy.target": [0.1, 0.2]}}
    with django_capture_on_commit_callbacks(execute=False) as sent:
        sweep = sweeps.create_sweep(experiment, alice, name="s", space=space, concurrency=10)
    invalid = list(sweep.points.filter(state=SweepPoint.State.INVALID))
    assert len(invalid) == 2 and len(sent) == 2 and sweep.runs.count() == 2
    for point in invalid:
        assert point.overrides["stages[0].max_response_tokens"] == 256 and point.run is None
        assert point.errors == [{"path": "stages[1].max_response_tokens", "message": "must be >= stages[0] (256)"}]
    for run in sweep.runs.all():
        finish(run)
    sweeps.advance_sweep(sweep)
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.FINISHED and sweep.runs.count() == 2
    assert "2 invalid point(s)" in sweep.status_reason


def test_random_draws_are_seeded_in_range_and_crossed_with_the_grid(experiment, alice):
    space = {
        "grid": {"entropy.target": [0.1, 0.3]},
        "random": {
            "loss.clip_high": {"uniform": [0.2, 0.3]},
            "optim.lr": {"log_uniform": [1e-7, 1e-5]},
            "reward.workers": {"int_uniform": [1, 4]},
            "rollout.engine": {"choice": ["vllm", "hf"]},
        },
    }
    parsed = sweeps.parse_space(space, experiment.spec, seeds=1, samples=4)
    first = sweeps.expand(experiment.spec, parsed, seeds=1, samples=4, sample_seed=7, launcher="local")
    again = sweeps.expand(experiment.spec, parsed, seeds=1, samples=4, sample_seed=7, launcher="local")
    other = sweeps.expand(experiment.spec, parsed, seeds=1, samples=4, sample_seed=8, launcher="local")
    assert len(first) == 8 and [p.overrides for p in first] == [p.overrides for p in again]
    assert [p.overrides for p in first] != [p.overrides for p in other]
    for point in first:
        o = point.overrides
        assert 0.2 <= o["loss.clip_high"] <= 0.3 and 1e-7 <= o["optim.lr"] <= 1e-5
        assert o["reward.workers"] in {1, 2, 3, 4} and o["rollout.engine"] in {"vllm", "hf"}
        assert not point.errors and point.spec["resources"]["launcher"] == "local"
    # the grid is crossed with the same four draws
    assert [p.overrides["loss.clip_high"] for p in first[:4]] == [p.overrides["loss.clip_high"] for p in first[4:]]


@pytest.mark.parametrize(
    ("space", "seeds", "samples", "path", "words"),
    [
        ({"grid": {"stages[5].steps": [1]}}, 1, 1, "space.grid.stages[5].steps", "has 2 item(s)"),
        ({"grid": {"entropy..target": [1]}}, 1, 1, "space.grid.entropy..target", "not a spec field path"),
        ({"grid": {"entropy.target": []}}, 1, 1, "space.grid.entropy.target", "non-empty list"),
        ({"grid": {"seed": [1, 2]}}, 2, 1, "space.grid.seed", "seeds must be 1"),
        ({"grid": {"resources.launcher": ["slurm"]}}, 1, 1, "space.grid.resources.launcher", "launcher"),
        ({"random": {"optim.lr": {"normal": [0, 1]}}}, 1, 1, "space.random.optim.lr", "uniform"),
        ({"random": {"optim.lr": {"log_uniform": [0, 1]}}}, 1, 1, "space.random.optim.lr", "low > 0"),
        ({"random": {"loss.clip_high": {"uniform": [0.3, 0.2]}}}, 1, 1, "space.random.loss.clip_high", "<="),
        ({"grid": {"entropy.target": [0.1]}}, 1, 3, "samples", "random section"),
        ({"grid": {"stages[0].steps.x": [1]}}, 1, 1, "space.grid.stages[0].steps.x", "is a value"),
        ({}, 1, 1, "space", "sweeps nothing"),
        ({"grids": {}}, 1, 1, "space.grids", "not a known section"),
    ],
)
def test_a_malformed_space_is_refused_at_its_path(experiment, alice, space, seeds, samples, path, words):
    with pytest.raises(SpecError) as caught:
        sweeps.create_sweep(experiment, alice, name="s", space=space, seeds=seeds, samples=samples)
    assert any(e.path == path and words in e.message for e in caught.value.errors), caught.value.errors
    assert not Sweep.objects.exists()


def test_a_space_with_no_valid_point_and_bad_fields_are_refused(experiment, alice):
    with pytest.raises(ValidationError) as caught:
        sweeps.create_sweep(experiment, alice, name="s", space={"grid": {"entropy.target": [-1.0]}})
    assert "none of its 1 point(s)" in caught.value.message_dict["space"][0]
    with pytest.raises(ValidationError) as caught:
        sweeps.create_sweep(experiment, alice, name="", space=GRID_3X2, concurrency=0, launcher="k8s")
    assert set(caught.value.message_dict) == {"name", "concurrency", "launcher"}
    assert not Sweep.objects.exists()


def test_too_many_points_are_refused(experiment, alice):
    space = {"grid": {"entropy.target": [0.1 * i + 0.1 for i in range(40)], "seed": list(range(30))}}
    with pytest.raises(SpecError, match="at most 1000"):
        sweeps.create_sweep(experiment, alice, name="s", space=space)


def test_viewers_cannot_create_and_members_cancel_only_their_own(
    experiment, alice, make_user, django_capture_on_commit_callbacks
):
    viewer, member = make_user("vera"), make_user("mo")
    add_member(experiment.project.team, viewer, Membership.Role.VIEWER)
    add_member(experiment.project.team, member, Membership.Role.MEMBER)
    with pytest.raises(PermissionDenied):
        sweeps.create_sweep(experiment, viewer, name="v", space=GRID_3X2)
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweeps.create_sweep(experiment, alice, name="s", space=GRID_3X2, concurrency=2)
    with pytest.raises(PermissionDenied):
        sweeps.cancel_sweep(sweep, member)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        sweeps.cancel_sweep(sweep, alice)
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.CANCELLED and not sent  # queued runs cancel at once, no task needed
    assert set(sweep.runs.values_list("status", flat=True)) == {RunStatus.CANCELLED}
    assert sweep.points.filter(state=SweepPoint.State.NOT_LAUNCHED).count() == 4
    assert sweeps.advance_sweep(sweep) == []
    actions = list(AuditEntry.objects.filter(team=experiment.project.team).values_list("action", flat=True))
    sweep_actions = [a for a in actions if a.startswith("sweep.")]
    assert sweep_actions == [AuditEntry.Action.SWEEP_CANCEL, AuditEntry.Action.SWEEP_CREATE]
    assert set(actions) - set(sweep_actions) <= {AuditEntry.Action.LAUNCH, AuditEntry.Action.CANCEL}


def test_a_sweep_whose_creator_left_the_team_stops(experiment, alice, make_user, django_capture_on_commit_callbacks):
    bob = make_user("bob")
    add_member(experiment.project.team, bob, Membership.Role.MEMBER)
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweeps.create_sweep(experiment, bob, name="s", space=GRID_3X2, concurrency=1)
    Membership.objects.filter(user=bob).delete()
    finish(sweep.runs.get())
    assert sweeps.advance_sweeps() == {sweep.pk: 0}
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.CANCELLED and "can no longer launch" in sweep.status_reason
    assert sweep.points.filter(state=SweepPoint.State.PENDING).count() == 0


def test_comparison_urls_open_the_dashboard_on_the_sweep_grouped_by_each_swept_field(
    experiment, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweeps.create_sweep(experiment, alice, name="s", space=GRID_3X2, seeds=2, concurrency=2)
    assert sweeps.comparison_url(sweep) == f"/compare/?sweep={sweep.pk}&group=entropy.target"
    assert sweeps.comparison_urls(sweep) == [
        ("entropy.target", f"/compare/?sweep={sweep.pk}&group=entropy.target"),
        ("stages[0].max_response_tokens", f"/compare/?sweep={sweep.pk}&group=stages%5B0%5D.max_response_tokens"),
    ]


def test_configuration_results_take_each_runs_best_eval(experiment, alice, django_capture_on_commit_callbacks):
    from experiments.models import EvaluationResult

    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweeps.create_sweep(
            experiment, alice, name="s", space={"grid": {"entropy.target": [0.1, 0.2]}}, seeds=2, concurrency=4
        )
    for point in sweep.points.select_related("run"):
        for step, score in ((0, 0.1), (5, 0.2 + 0.1 * point.configuration + 0.01 * point.overrides["seed"])):
            EvaluationResult.objects.create(
                run=point.run, benchmark="arith", k=2, num_samples=16, avg_at_k=score, temperature=1.0, step=step
            )
    results = sweeps.configuration_results(sweep)
    assert [r.overrides for r in results] == [{"entropy.target": 0.1}, {"entropy.target": 0.2}]
    assert results[0].summary["arith"] == {"mean": pytest.approx(0.205), "max": pytest.approx(0.21), "runs": 2}
    assert results[1].summary["arith"]["max"] == pytest.approx(0.31)
