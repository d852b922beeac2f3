"""Health alerts: each rule raises after its streak, clears with hysteresis, records events of kind ``alert``
(shown apart on the run page, filtered by the events API), and shows as a banner on the run page and a badge in
every run list, whose queries do not grow with the runs; the beat task checks running runs once per change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from experiments import alerts, sweeps
from experiments.ingestion import store_metrics
from experiments.models import RunAlert, RunEvent, RunStatus

Kind = RunAlert.Kind


@pytest.fixture
def running(run):
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    return run


def feed(run, start: int, values: dict[str, list[float]], *, t0: float = 1_000_000.0, dt: float = 10.0) -> int:
    """Log steps start.. with the given per-metric values through the ingestion path; returns the next step."""
    n = len(next(iter(values.values())))
    records = [
        {
            "step": start + i,
            "stage": 0,
            "wall_time": t0 + (start + i) * dt,
            "metrics": {name: series[i] for name, series in values.items()},
        }
        for i in range(n)
    ]
    store_metrics(run, {"records": records})
    return start + n


def at(run, step: int, t0: float = 1_000_000.0, dt: float = 10.0) -> datetime:
    """'Now' a few seconds after the step was logged, so the stall rule stays quiet."""
    return datetime.fromtimestamp(t0 + step * dt + 5, UTC)


def test_entropy_collapse_raises_after_its_streak_and_clears_with_hysteresis(running, settings):
    settings.OR1_ALERT_ENTROPY_COLLAPSE_STEPS = 6
    target = running.spec_as_launched["entropy"]["target"]  # 0.2: collapse below 0.1
    step = feed(running, 1, {"actor/entropy_loss": [0.3, 0.25, 0.09, 0.08, 0.07, 0.06, 0.05]})
    assert alerts.check_run(running, now=at(running, step)) == []  # 5 low steps: not yet
    step = feed(running, step, {"actor/entropy_loss": [0.04]})
    assert alerts.check_run(running, now=at(running, step)) == ["raised entropy_collapse"]
    alert = RunAlert.objects.get(run=running, kind=Kind.ENTROPY_COLLAPSE, cleared_at__isnull=True)
    assert (
        alert.step == 8 and "below 0.5 x its target 0.2 (= 0.1)" in alert.message and "0.04 at step 8" in alert.message
    )
    assert target == 0.2
    event = running.events.get(kind=RunEvent.Kind.ALERT)
    assert event.data["alert"] == "entropy_collapse" and event.data["state"] == "raised"

    step = feed(running, step, {"actor/entropy_loss": [0.03]})
    assert alerts.check_run(running, now=at(running, step)) == []  # still open: updated, not raised again
    assert RunAlert.objects.get(run=running, cleared_at__isnull=True).step == 9
    step = feed(running, step, {"actor/entropy_loss": [0.19, 0.2]})
    assert alerts.check_run(running, now=at(running, step)) == []  # 2 good steps of the 3 needed to clear
    step = feed(running, step, {"actor/entropy_loss": [0.21]})
    assert alerts.check_run(running, now=at(running, step)) == ["cleared entropy_collapse"]
    assert not RunAlert.objects.filter(run=running, cleared_at__isnull=True).exists()
    assert [e.data["state"] for e in running.events.filter(kind=RunEvent.Kind.ALERT)] == ["raised", "cleared"]


def test_explosion_and_a_pinned_coefficient(running, settings):
    settings.OR1_ALERT_ENTROPY_EXPLOSION_STEPS = 4
    settings.OR1_ALERT_COEF_PINNED_STEPS = 4
    max_coef = running.spec_as_launched["entropy"]["max_coef"]
    step = feed(
        running,
        1,
        {"actor/entropy_loss": [0.5, 0.6, 0.7, 0.9], "actor/entropy_coeff": [max_coef] * 3 + [max_coef * 0.99]},
    )
    assert alerts.check_run(running, now=at(running, step)) == ["raised entropy_explosion"]
    step = feed(running, step, {"actor/entropy_loss": [0.8], "actor/entropy_coeff": [max_coef]})
    assert alerts.check_run(running, now=at(running, step)) == []  # the coefficient dipped 2 steps ago
    step = feed(running, step, {"actor/entropy_loss": [0.8] * 3, "actor/entropy_coeff": [max_coef] * 3})
    assert alerts.check_run(running, now=at(running, step)) == ["raised coef_pinned"]
    assert "maximum 0.005" in RunAlert.objects.get(kind=Kind.COEF_PINNED).message


def test_no_entropy_alerts_when_entropy_control_is_off(experiment, alice, settings):
    from experiments.actions import create_run

    spec = dict(experiment.spec, entropy={"enabled": False})
    run = create_run(experiment, user=alice, spec=spec)
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    step = feed(run, 1, {"actor/entropy_loss": [0.001] * 12})
    assert alerts.check_run(run, now=at(run, step)) == []


def test_stall_uses_the_longer_of_its_minutes_and_the_step_time(running, settings):
    settings.OR1_ALERT_STALL_MINUTES = 30
    settings.OR1_ALERT_STALL_STEP_MULTIPLE = 5
    step = feed(running, 1, {"critic/score/mean": [0.1] * 5}, dt=600.0)  # 10-minute steps: the limit is 50 min
    last = datetime.fromtimestamp(1_000_000.0 + 5 * 600.0, UTC)
    assert alerts.check_run(running, now=last + timedelta(minutes=45)) == []
    assert alerts.check_run(running, now=last + timedelta(minutes=51)) == ["raised stalled"]
    message = RunAlert.objects.get(kind=Kind.STALLED).message
    assert message.startswith("No new metric for 51 min 00 s (the limit is 50 min 00 s); the last was step 5")
    feed(running, step, {"critic/score/mean": [0.2]}, dt=600.0)
    assert alerts.check_run(running, now=last + timedelta(minutes=52)) == ["cleared stalled"]


def test_a_stall_alert_clears_when_the_run_ends_and_the_task_sees_only_what_changed(running, settings):
    settings.OR1_ALERT_STALL_MINUTES = 1
    feed(running, 1, {"critic/score/mean": [0.1]}, t0=datetime.now(UTC).timestamp() - 3600)
    assert alerts.check_runs() == {running.pk: ["raised stalled"]}
    assert alerts.check_runs() == {}  # idempotent: nothing new
    running.transition_to(RunStatus.FAILED, reason="lost")
    assert alerts.check_runs() == {running.pk: ["cleared stalled"]}
    assert alerts.check_runs() == {}
    assert RunAlert.objects.get(kind=Kind.STALLED).cleared_reason == "the run is failed"


def test_rising_truncation_within_a_stage_and_clearing_at_the_next(running, settings):
    settings.OR1_ALERT_TRUNCATION_WINDOW = 3
    step = feed(running, 1, {"response_length/clip_ratio": [0.05, 0.1, 0.1, 0.35, 0.4, 0.45]})
    assert alerts.check_run(running, now=at(running, step)) == ["raised truncation_rising"]
    alert = RunAlert.objects.get(kind=Kind.TRUNCATION_RISING)
    assert "40% of responses hit the stage's limit (64 tokens) over the last 3 steps, up from 8%" in alert.message
    running.current_stage = 1  # the trainer entered the longer stage (start step 3 in the tiny spec)
    running.save(update_fields=["current_stage"])
    assert alerts.check_run(running, now=at(running, step)) == ["cleared truncation_rising"]
    assert RunAlert.objects.get(kind=Kind.TRUNCATION_RISING).cleared_reason == "a new stage began"


def test_banner_on_the_run_page_and_badge_in_the_runs_list(client, alice, running, settings):
    settings.OR1_ALERT_ENTROPY_COLLAPSE_STEPS = 3
    step = feed(running, 1, {"actor/entropy_loss": [0.01, 0.01, 0.01]})
    alerts.check_run(running, now=at(running, step))
    client.force_login(alice)
    page = client.get(reverse("run-detail", args=[running.pk])).content.decode()
    assert 'data-alert="entropy_collapse"' in page and "Entropy is collapsing" in page
    partial = client.get(reverse("run-alerts", args=[running.pk])).content.decode()
    assert partial.count('role="alert"') == 1 and "hx-trigger" in partial
    runs = client.get(reverse("run-list")).content.decode()
    assert 'class="badge badge-alert"' in runs and "entropy collapse" in runs


def test_alert_events_stand_apart_on_the_run_page_and_the_api_filters_them_by_kind(client, alice, running, settings):
    settings.OR1_ALERT_ENTROPY_COLLAPSE_STEPS = 2
    step = feed(running, 1, {"actor/entropy_loss": [0.01, 0.01]})
    alerts.check_run(running, now=at(running, step))
    step = feed(running, step, {"actor/entropy_loss": [0.2]})
    alerts.check_run(running, now=at(running, step))
    client.force_login(alice)
    events = client.get(reverse("run-events", args=[running.pk])).content.decode()
    assert events.count('class="event-alert alert-raised" data-alert="entropy_collapse"') == 1
    assert events.count('class="event-alert alert-cleared" data-alert="entropy_collapse"') == 1
    assert "&#9888; Alert raised" in events and "&#9888; Alert cleared" in events

    url = f"/api/v1/runs/{running.pk}/events/"
    found = client.get(url, {"kind": "alert"}).json()["results"]
    assert [(e["kind"], e["data"]["state"]) for e in found] == [("alert", "raised"), ("alert", "cleared")]
    both = client.get(url, {"kind": "alert,status"}).json()["results"]
    assert {e["kind"] for e in both} == {"alert", "status"} and len(both) == len(client.get(url).json()["results"])
    bad = client.get(url, {"kind": "alarm"})
    assert bad.status_code == 400 and "kind" in str(bad.json()) and "must be one of" in str(bad.json())


def test_run_lists_read_every_badge_in_one_query(client, alice, experiment, django_capture_on_commit_callbacks):
    """Home, the experiment's page, the runs list, the sweep's page and the comparison's picker each read the
    open alerts of all their rows in one query: the same for 2 runs with alerts as for 6 runs with 7 alerts.
    (The runs list's ETA and the comparison's metric names still cost a query per run, on purpose or not.)"""
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweeps.create_sweep(
            experiment, alice, name="s", space={"grid": {"entropy.target": [0.1, 0.2, 0.3]}}, seeds=2, concurrency=2
        )
    client.force_login(alice)
    pages = [
        reverse("home"),
        reverse("experiment-detail", args=[experiment.pk]),
        reverse("run-list"),
        reverse("sweep-detail", args=[sweep.pk]),
        reverse("compare") + f"?experiment={experiment.pk}",
    ]

    def alert_every_run() -> None:
        for run in sweep.runs.filter(alerts__isnull=True):
            RunAlert.objects.create(run=run, kind=Kind.STALLED, message=f"run {run.pk} is silent")
        RunAlert.objects.get_or_create(run=sweep.runs.order_by("pk").first(), kind=Kind.ENTROPY_COLLAPSE)

    def alert_queries() -> list[int]:
        counts = []
        for url in pages:
            with CaptureQueriesContext(connection) as captured:
                page = client.get(url).content.decode()
            assert page.count('class="badge badge-alert"') == sweep.runs.count(), url
            assert page.count('data-alerts="2"') == 1, url
            counts.append(sum('FROM "experiments_runalert"' in q["sql"] for q in captured.captured_queries))
        return counts

    alert_every_run()
    assert alert_queries() == [1] * len(pages)
    sweep.concurrency = 6
    sweep.save(update_fields=["concurrency"])
    with django_capture_on_commit_callbacks(execute=False):
        sweeps.advance_sweep(sweep)
    assert sweep.runs.count() == 6
    alert_every_run()
    assert alert_queries() == [1] * len(pages)
