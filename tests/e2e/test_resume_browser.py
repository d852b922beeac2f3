"""Resume and the top bar in Chromium: a cancelled run's page offers Resume, pressing it queues the run again
(the page says so and starts following it), and the Checkpoints menu of the top bar opens a project's
registry. The resumed trainer itself runs in tests/workers/test_local_launcher.py."""

from __future__ import annotations

from django.urls import reverse

from experiments.models import Checkpoint, RunStatus
from tests.e2e import test_dashboards_browser as shared

# the Chromium and logged-in page fixtures, and the browser marks, of the dashboard tests
ARTIFACTS, pytestmark, browser, page = shared.ARTIFACTS, shared.pytestmark, shared.browser, shared.page


def test_resume_a_cancelled_run_from_its_page(page, live_server, run, project, tmp_path):
    run.transition_to(RunStatus.CANCELLED, reason="cancelled by alice before it started")
    Checkpoint.objects.create(run=run, step=3, stage=0, path=str(tmp_path / "step-000003"))

    page.goto(live_server.url + reverse("run-detail", args=[run.pk]))
    page.click("text=Resume from step 3")
    page.wait_for_selector(f"text=Resuming run #{run.pk} from its newest checkpoint")
    assert page.locator("#run-status .badge").inner_text() == "Queued"
    assert "resumed by alice from checkpoint step 3" in page.locator("#run-status").inner_text()
    assert page.locator("#run-status").get_attribute("hx-trigger")  # it polls again
    assert page.locator("text=Resume from step").count() == 0
    page.screenshot(path=str(ARTIFACTS / "run-resumed.png"), full_page=True)

    page.click("#topnav summary:has-text('Checkpoints')")
    page.screenshot(path=str(ARTIFACTS / "nav-checkpoints-menu.png"))
    page.click(f"#topnav a:has-text('Alpha / {project.name}')")
    page.wait_for_url(live_server.url + reverse("checkpoint-registry", args=[project.pk]))
    assert page.locator("#checkpoints tbody tr").count() == 1
    assert page.locator(f"#checkpoints a[href='{reverse('run-detail', args=[run.pk])}']").count() == 1
