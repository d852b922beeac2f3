"""Smoke test of the experiment editor in headless Chromium: log in, start from the CPU demo recipe, add rows
with htmx, watch the data-mix shares and each stage's N_SGD follow the typing, see an error at its field,
fix it and save. Screenshots go to test-artifacts/ for a person to look at.

Runs only where Chromium is installed (``make services`` installs it; OR1_CHROMIUM names another binary).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.urls import reverse

CHROMIUM = os.environ.get("OR1_CHROMIUM", "/usr/bin/chromium")
# The flags that work headless as root on the CI machines (services notes §4).
FLAGS = [
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


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still plain
    # synchronous ones, which Django would otherwise refuse next to a running loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.set_default_timeout(10_000)
        yield page
        # While Playwright's event loop runs in this thread, asgiref keeps Django's connections per context,
        # so the test body got a connection of its own, apart from the fixtures' one: close it while that
        # context is current, or it stays open and blocks dropping the test database.
        from django.db import connections

        connections.close_all()
        browser.close()


def test_editor_rows_shares_and_n_sgd_update_live(live_server, alice, project, browser_page):
    from playwright.sync_api import expect

    from experiments.models import Experiment
    from or1_train.spec import parse_spec

    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + reverse("home"))

    page.goto(live_server.url + reverse("experiment-new", args=[project.pk]) + "?template=cpu-demo")
    expect(page.locator("#share-0")).to_have_text("66.7%")
    expect(page.locator("#n-sgd-1")).to_have_text("1")
    expect(page.locator("[data-total-steps]")).to_have_text("70 steps in all")
    page.evaluate("window.sameDocument = true")  # gone if a row operation reloaded the page instead of htmx

    # Shares follow the weights as they are typed.
    page.fill("#id_sources-0-weight", "3")
    expect(page.locator("#share-0")).to_have_text("75.0%")
    expect(page.locator("#share-1")).to_have_text("25.0%")

    # Add a source row (htmx swaps the table in): the typed weight survives, the shares include the new row.
    page.click("text=Add a source by path")
    expect(page.locator("#sources-section tbody tr[data-row]")).to_have_count(3)
    expect(page.locator("#id_sources-0-weight")).to_have_value("3")
    expect(page.locator("#share-0")).to_have_text("60.0%")
    page.fill("#id_sources-2-path", "/data/extra.jsonl")
    page.fill("#id_sources-2-name", "extra")

    # Add a stage: a copy of the last one; N_SGD and the start steps follow the typing.
    page.click("text=Add a stage")
    expect(page.locator("#stages-section tbody tr[data-row]")).to_have_count(3)
    expect(page.locator("#id_stages-2-max_response_tokens")).to_have_value("64")
    expect(page.locator("#start-2")).to_have_text("70")
    page.fill("#id_stages-2-mini_batch", "8")
    expect(page.locator("#n-sgd-2")).to_have_text("2")
    page.fill("#id_stages-2-mini_batch", "6")
    expect(page.locator("#n-sgd-2")).to_have_text("2.67")
    expect(page.locator("#n-sgd-2")).to_have_class(re.compile(r"\bbad\b"))
    page.fill("#id_stages-2-mini_batch", "16")
    page.fill("#id_stages-2-name", "longest")
    page.fill("#id_stages-2-steps", "5")
    expect(page.locator("[data-total-steps]")).to_have_text("75 steps in all")

    # Reorder: move the new stage up, its values go with it.
    page.click("button[title='Move stage 3 up']")
    expect(page.locator("#id_stages-1-name")).to_have_value("longest")
    expect(page.locator("#id_stages-2-name")).to_have_value("long")
    page.click("button[title='Move stage 2 down']")
    expect(page.locator("#id_stages-2-name")).to_have_value("longest")
    assert page.evaluate("window.sameDocument === true"), "a row operation reloaded the page"
    page.click("#advanced > summary")
    expect(page.locator("#id_loss-clip_low")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "editor.png"), full_page=True)

    # An error comes back at its field, with everything typed still there.
    page.fill("#id_stages-2-max_response_tokens", "50")
    page.fill("#id_name", "cpu-demo-three-stages")
    page.click("button:text('Save experiment')")
    expect(page.locator("#error-stages-2-max_response_tokens")).to_contain_text("must be at least stage 2's (64)")
    expect(page.locator("#problems")).to_contain_text("Stage 3 · Max response tokens")
    expect(page.locator("#id_sources-2-path")).to_have_value("/data/extra.jsonl")
    expect(page.locator("#id_sources-0-weight")).to_have_value("3")
    page.locator("#problems").screenshot(path=str(ARTIFACTS / "editor-problems.png"))
    page.locator("#stages-section").screenshot(path=str(ARTIFACTS / "editor-stage-error.png"))

    page.fill("#id_stages-2-max_response_tokens", "256")
    page.click("button:text('Save experiment')")
    expect(page.locator("h1")).to_contain_text("cpu-demo-three-stages")
    expect(page.locator("button:text('Launch')")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "experiment-saved.png"), full_page=True)
    spec = parse_spec(Experiment.objects.get(name="cpu-demo-three-stages").spec)
    assert [s.max_response_tokens for s in spec.stages] == [30, 64, 256]
    assert [(s.display_name, s.weight) for s in spec.data.sources] == [
        ("arith-easy", 3.0),
        ("arith-hard", 1.0),
        ("extra", 1.0),
    ]


def test_run_page_follows_the_run_without_a_reload(live_server, alice, run, tmp_path, browser_page):
    from playwright.sync_api import expect

    from experiments.models import MetricPoint, RunStatus
    from experiments.models.metrics import Point

    page = browser_page
    run.run_dir = str(tmp_path)
    run.save(update_fields=["run_dir"])
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    log = tmp_path / "trainer.log"
    log.write_text("".join(f"step {i} done\n" for i in range(1, 3)))
    MetricPoint.upsert(run, [Point("critic/score/mean", s, 0.1 * s, 1000.0 + 10 * s) for s in (1, 2)])
    run.current_step = 2
    run.save(update_fields=["current_step"])

    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(live_server.url + reverse("run-detail", args=[run.pk]))
    expect(page.locator("#run-step")).to_have_text("2 / 5")
    expect(page.locator("#run-eta")).to_have_text("30 s")
    expect(page.locator("button:text('Cancel run')")).to_be_visible()

    # The trainer moves on: the panels follow within a few seconds, without a reload.
    with log.open("a") as handle:
        handle.write("step 3 done\n")
    MetricPoint.upsert(run, [Point("critic/score/mean", 3, 0.75, 1030.0)])
    run.current_step, run.current_stage = 3, 1
    run.save(update_fields=["current_step", "current_stage"])
    expect(page.locator("#run-step")).to_have_text("3 / 5", timeout=8_000)
    expect(page.locator("#run-stage")).to_contain_text("2 of 2: long")
    expect(page.locator("[data-metric='critic/score/mean'] .tile-value")).to_have_text("0.75")
    expect(page.locator("#run-log pre")).to_contain_text("step 3 done", timeout=8_000)
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)

    run.transition_to(RunStatus.SUCCEEDED, exit_code=0)
    expect(page.locator("#run-status .badge")).to_have_text("Succeeded", timeout=8_000)
    expect(page.locator("button:text('Cancel run')")).to_have_count(0)
    expect(page.locator("#run-status")).not_to_have_attribute("hx-trigger", re.compile(".+"))
