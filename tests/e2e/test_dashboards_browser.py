"""The dashboards in headless Chromium: a run page whose entropy chart grows while points arrive through the
real ingestion endpoint; the comparison dashboard grouping runs by a spec field, with exactly the differing
fields in its diff table; the alert banner for a run fed a collapsing entropy series; the rollout browser; the
issue's walk-through (watch a run, duplicate its experiment with another entropy target, launch it, compare the
two grouped by the target, live). Screenshots go to test-artifacts/ for a person to look at.

One browser for the module (a new page per test). Runs only where Chromium is installed (``make services``
installs it; OR1_CHROMIUM names another binary).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest
from django.urls import reverse

CHROMIUM = os.environ.get("OR1_CHROMIUM", "/usr/bin/chromium")
FLAGS = [  # the flags that work headless as root on the CI machines (services notes §4)
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a-long-test-password-1"  # tests/conftest.py

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls are plain synchronous
    # ones, which Django would otherwise refuse next to a running loop.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser, live_server, alice):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + reverse("home"))
    yield page
    context.close()
    # While Playwright's loop runs in this thread, asgiref keeps Django's connections per context: close the
    # test body's own connection, or it blocks dropping the test database.
    from django.db import connections

    connections.close_all()


def records(steps, *, entropy, target_tokens=64):
    """Trainer records of the tiny spec's run, one step every 30 s ending about now (so the run is not stalled)."""
    start = time.time() - 30 * 40
    return [
        {
            "step": s,
            "stage": 0 if s <= 3 else 1,
            "wall_time": start + 30 * s,
            "metrics": {
                "actor/entropy_loss": entropy(s),
                "actor/entropy": entropy(s) * 1.4,
                "actor/entropy_coeff": min(0.005, 0.0005 * s),
                "actor/entropy_coeff_realized": min(0.005, 0.0005 * s) * (s % 2),
                "critic/score/mean": 0.1 + 0.04 * s,
                "train/accuracy": 0.08 + 0.04 * s,
                "response_length/mean": 30 + 3 * s,
                "response_length/max": min(target_tokens if s <= 3 else 128, 50 + 8 * s),
                "response_length/clip_ratio": 0.05 * s if s <= 3 else 0.02,
                "perf/total_tokens": 1500.0 * s,
                "perf/tokens_per_s": 900 + 10 * s,
                "timing_s/gen": 12.0,
                "timing_s/update_actor": 7.5,
                "actor/pg_clipfrac": 0.01 * s,
                "actor/ppo_kl": 0.0004 * s,
                "actor/grad_norm": 0.9 - 0.03 * s,
                "actor/lr": 1e-6,
                "batch/solve_none_ratio": 0.3 - 0.02 * s,
                "batch/solve_all_ratio": 0.05 * s,
                "batch/without_adv_ratio": 0.3,
            },
        }
        for s in steps
    ]


def running(run):
    from experiments.models import RunStatus

    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    return run


def points_of(page, chart: str) -> int:
    return int(page.locator(f"#chart-{chart}").get_attribute("data-points"))


def test_run_page_follows_ingested_points_and_raises_the_collapse_banner(page, live_server, run, settings, tmp_path):
    from playwright.sync_api import expect

    from experiments.alerts import check_runs
    from experiments.ingestion import store_metrics

    settings.OR1_ALERT_ENTROPY_COLLAPSE_STEPS = 3
    running(run)
    run.run_dir = str(tmp_path)
    run.save(update_fields=["run_dir"])
    store_metrics(run, {"records": records(range(1, 3), entropy=lambda s: 0.45 - 0.04 * s)})
    page.goto(live_server.url + reverse("run-detail", args=[run.pk]))
    expect(page.locator("#chart-entropy")).to_have_attribute("data-points", "2")
    expect(page.locator("#chart-status")).to_contain_text("live")
    expect(page.locator("#run-alerts .alert-banner")).to_have_count(0)
    shapes = page.evaluate("document.getElementById('chart-entropy').layout.shapes.map(s => s.label && s.label.text)")
    assert "stage 2 · 128 tok" in shapes and "target 0.2" in shapes

    # The trainer posts more steps through the real endpoint, with the run's token; the open page follows.
    # Entropy collapses over them (target 0.2, collapse line 0.1).
    token = run.issue_ingest_token()
    reply = httpx.post(
        live_server.url + reverse("ingest-metrics", args=[run.pk]),
        json={"records": records(range(3, 6), entropy=lambda s: 0.3 * 0.5 ** (s - 1))},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.json() == {"received": 60, "stored": 60, "skipped": 0}
    expect(page.locator("#chart-entropy")).to_have_attribute("data-points", "5", timeout=10_000)
    assert points_of(page, "reward") == 5

    # What beat runs every 30 s: the banner appears on the open page without a reload.
    assert check_runs() == {run.pk: ["raised entropy_collapse"]}
    banner = page.locator("#run-alerts [data-alert=entropy_collapse]")
    expect(banner).to_contain_text("Entropy is collapsing", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-run-live.png"), full_page=True)

    # Tokens seen on the x axis, without a request: the last entropy point sits at 5 x 1500 tokens.
    page.select_option("#chart-x", "tokens")
    expect(page.locator("#chart-entropy .xtitle")).to_have_text("tokens seen")
    assert page.evaluate("document.getElementById('chart-entropy').data[0].x.slice(-1)[0]") == 7500
    page.locator("#run-charts").screenshot(path=str(ARTIFACTS / "dashboard-run-tokens.png"))

    page.goto(live_server.url + reverse("run-list"))
    expect(page.locator(f"tr[data-run='{run.pk}'] .badge-alert")).to_have_text(re.compile("entropy collapse"))


def test_comparison_groups_runs_by_a_spec_field_and_diffs_their_specs(page, live_server, project, alice, spec_data):
    from playwright.sync_api import expect

    from experiments.actions import create_experiment_from_spec, create_run
    from experiments.dashboards.specdiff import differing
    from experiments.ingestion import store_metrics

    spec_data["stages"][0]["steps"] = spec_data["stages"][1]["steps"] = 20
    runs = []
    for target, seeds in ((0.2, (0, 1)), (0.35, (0,))):
        spec = dict(spec_data, name=f"target-{target}", entropy={"target": target})
        experiment = create_experiment_from_spec(project=project, user=alice, spec=spec)
        for seed in seeds:
            run = create_run(experiment, user=alice, spec=dict(spec, seed=seed))
            wobble = 0.01 * (seed + 1)
            store_metrics(
                run,
                {"records": records(range(1, 41), entropy=lambda s, t=target, w=wobble: t + w * ((-1) ** s) + 0.3 / s)},
            )
            runs.append(run)
    expected = {path for path, _ in differing([r.spec_as_launched for r in runs])}
    assert expected == {"name", "seed", "entropy.target"}

    ids = ",".join(str(r.pk) for r in runs)
    page.goto(f"{live_server.url}{reverse('compare')}?runs={ids}&metrics=actor/entropy_loss&metrics=critic/score/mean")
    expect(page.locator("#cmp-chart-0")).to_have_attribute("data-points", "120")
    rows = page.locator("#diff-table tbody tr")
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.path)")) == expected
    assert page.locator("#diff-table td.changed").count() == 3  # run 2's seed, run 3's name and target
    expect(page.locator("#summary-table tbody tr")).to_have_count(3)

    page.fill("#cmp-group", "entropy.target")
    page.select_option("#cmp-smooth", "ema")  # both need the bucket means: the page fetches them, then draws
    page.wait_for_function("document.getElementById('cmp-chart-0').data.some(t => t.name.endsWith(' raw'))")
    names = page.evaluate("document.getElementById('cmp-chart-0').data.map(t => t.name)")
    assert "entropy.target = 0.2 (2 runs)" in names and "entropy.target = 0.35 (1 run)" in names
    assert "entropy.target = 0.2 (2 runs) band" in names and "entropy.target = 0.2 (2 runs) raw" in names
    assert re.search(r"group=entropy.target.*smooth=ema|smooth=ema.*group=entropy.target", page.url)
    page.screenshot(path=str(ARTIFACTS / "dashboard-compare.png"), full_page=True)

    page.fill("#save-form input[name=name]", "entropy targets")
    page.click("#save-form button")
    expect(page.locator("h1")).to_contain_text("saved view “entropy targets”")
    expect(page.locator("#cmp-group")).to_have_value("entropy.target")
    expect(page.locator("#cmp-smooth")).to_have_value("ema")


def test_rollout_browser(page, live_server, run, tmp_path):
    from playwright.sync_api import expect

    from or1_train.data.schema import Example
    from or1_train.rollout.base import Sample
    from or1_train.rollout_log import record_groups
    from or1_train.trainer import Group

    run.run_dir = str(tmp_path)
    run.save(update_fields=["run_dir"])
    samples = [
        Sample([1] * n, [-0.2] * n, "length" if n == 64 else "stop", f"<think>{'2+2 ' * n}</think> \\boxed{{{n}}}")
        for n in (12, 64, 20, 33)
    ]
    example = Example("arith-17", [{"role": "user", "content": "Compute (3 + 4) * 2."}], "14", data_source="arith-easy")
    kept = Group(example, [1], samples, [1.0, 0.0, 1.0, 0.0])
    solved = Group(Example("arith-3", [{"role": "user", "content": "Compute 1 + 1."}], "2"), [1], samples, [1.0] * 4)
    record_groups(tmp_path, 9, [kept, solved], kept=[kept], max_groups=4, seed=0)
    page.goto(live_server.url + reverse("run-rollouts", args=[run.pk]))
    page.locator("#group-0 details.response").nth(1).locator("summary").click()
    expect(page.locator("#group-1 .badge-filtered")).to_have_text("filtered: all correct")
    page.screenshot(path=str(ARTIFACTS / "dashboard-rollouts.png"), full_page=True)


def post_records(live_server, run, recs) -> None:
    """What the run's trainer does: a batch through the real ingestion endpoint, with the run's token."""
    token = run.issue_ingest_token()
    reply = httpx.post(
        live_server.url + reverse("ingest-metrics", args=[run.pk]),
        json={"records": recs},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 200, reply.text


@pytest.fixture
def launch_queue(settings):
    """A Celery queue of this test's own for the Launch button's task; emptied and removed afterwards."""
    import uuid

    from or1platform.celery import app

    queue = f"test.walk.{uuid.uuid4().hex[:10]}"
    settings.OR1_LOCAL_LAUNCH_QUEUE = queue
    with app.connection_for_write() as conn, conn.SimpleQueue(queue) as q:
        yield q
        q.clear()
        q.queue.delete()  # and its bindings, so the broker keeps nothing of the test


def test_walk_through_watch_a_run_launch_another_target_and_compare(
    page, live_server, run, launch_queue, monkeypatch, tmp_path
):
    """The issue's walk-through as a new user does it: watch a run's entropy come down into its band, duplicate
    its experiment with another ``entropy.target`` in the editor, launch it, open the comparison from the new
    experiment's page and group by the target; the comparison follows the runs while they are live."""
    from playwright.sync_api import expect

    from experiments.models import Run
    from experiments.views import dashboards

    monkeypatch.setattr(dashboards, "COMPARE_POLL_SECONDS", 1)
    running(run)
    run.run_dir = str(tmp_path)
    run.save(update_fields=["run_dir"])
    falling = lambda s: 0.2 + 0.3 * 0.6 ** (s - 1)  # noqa: E731 (0.5 at step 1, into the band 0.1-0.4 at step 2)
    post_records(live_server, run, records(range(1, 3), entropy=falling))
    page.goto(live_server.url + reverse("run-detail", args=[run.pk]))
    expect(page.locator("#chart-entropy")).to_have_attribute("data-points", "2")
    shapes = page.evaluate("document.getElementById('chart-entropy').layout.shapes.map(s => s.label && s.label.text)")
    assert "target 0.2" in shapes and "healthy band (alert thresholds)" in shapes
    post_records(live_server, run, records(range(3, 6), entropy=falling))  # the 5 planned steps
    expect(page.locator("#chart-entropy")).to_have_attribute("data-points", "5", timeout=10_000)
    last = page.evaluate("document.getElementById('chart-entropy').data[0].y.slice(-1)[0]")
    assert 0.1 < last < 0.4 and last == pytest.approx(falling(5))
    page.screenshot(path=str(ARTIFACTS / "walk-1-run.png"), full_page=True)

    # Duplicate and edit: the same experiment with another target, saved, then launched with its button.
    page.click(f".crumbs a[href='{reverse('experiment-detail', args=[run.experiment_id])}']")
    page.click("text=Duplicate and edit")
    page.fill("input[name=name]", "tiny-target-0.35")
    page.fill("input[name=entropy-target]", "0.35")
    page.click("button:text('Save experiment')")
    expect(page.locator("h1")).to_have_text("tiny-target-0.35")
    expect(page.locator("main")).to_contain_text("duplicated from tiny")
    page.click("button:text('Launch')")
    expect(page.locator("h1")).to_contain_text("of tiny-target-0.35")
    second = Run.objects.get(experiment__name="tiny-target-0.35")
    assert second.spec_as_launched["entropy"]["target"] == 0.35 and page.url.endswith(f"/runs/{second.pk}/")
    message = launch_queue.get(timeout=5)  # what a worker would take: the launch of the second run
    assert message.headers["task"] == "workers.tasks.launch" and message.decode()[0] == [second.pk]
    message.ack()

    # Its trainer starts and reports; the comparison is one click from the new experiment's page.
    running(second)
    post_records(live_server, second, records(range(1, 5), entropy=lambda s: 0.35 + 0.2 * 0.6 ** (s - 1)))
    page.goto(live_server.url + reverse("experiment-detail", args=[second.experiment_id]))
    page.click("text=Compare with the runs of tiny")
    expect(page.locator("#cmp-chart-0")).to_have_attribute("data-metric", "actor/entropy_loss")
    expect(page.locator("#cmp-chart-0")).to_have_attribute("data-points", "9")
    assert page.locator("#diff-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.path)") == [
        "name",
        "entropy.target",
    ]
    page.fill("#cmp-group", "entropy.target")
    page.wait_for_function("document.getElementById('cmp-chart-0').data.some(t => t.name.startsWith('entropy'))")
    names = page.evaluate("document.getElementById('cmp-chart-0').data.map(t => t.name)")
    assert "entropy.target = 0.2 (1 run)" in names and "entropy.target = 0.35 (1 run)" in names
    expect(page.locator("#cmp-status")).to_contain_text("live")

    # Both runs are still live: a new step of the second run reaches the open comparison without a reload.
    post_records(live_server, second, records([5], entropy=lambda s: 0.36))
    expect(page.locator("#cmp-chart-0")).to_have_attribute("data-points", "10", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "walk-2-compare.png"), full_page=True)
