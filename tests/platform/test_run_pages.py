"""The runs list and a run's page: status, stage, progress, ETA, latest metrics, events, the log tail, the
polling that stops once a run has ended, and the Cancel button."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.urls import reverse

from experiments.actions import add_member, create_experiment_from_spec, create_run
from experiments.models import Membership, MetricPoint, Project, Run, RunStatus, Team
from experiments.models.metrics import Point
from experiments.runlog import MAX_BYTES, MAX_LINE_CHARS, tail
from experiments.runstats import eta_seconds, format_duration, latest_evals, latest_metrics

POLL = "hx-trigger=\"every 3s [document.visibilityState === 'visible']\""


@pytest.fixture
def running(run, tmp_path):
    """A running run whose directory is the test's own (so no real run's log can show up)."""
    run.run_dir = str(tmp_path / f"run-{run.pk}")
    run.save(update_fields=["run_dir"])
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    return run


def log_points(run: Run, steps: range, *, start: float = 1_000.0, seconds_per_step: float = 10.0) -> None:
    """Metric points for ``steps`` as the trainer logs them (one wall time per step)."""
    points = []
    for step in steps:
        t = start + step * seconds_per_step
        points += [
            Point("critic/score/mean", step, 0.1 * step, t),
            Point("train/accuracy", step, 0.05 * step, t),
            Point("actor/entropy_loss", step, 1.5 - 0.1 * step, t),
            Point("actor/entropy_coeff_realized", step, 0.002, t),
            Point("response_length/clip_ratio", step, 0.25, t),
        ]
    MetricPoint.upsert(run, points)


def write_log(run: Run, tmp_path: Path, data: bytes) -> Path:
    run.run_dir = str(tmp_path / f"run-{run.pk}")
    run.save(update_fields=["run_dir"])
    Path(run.run_dir).mkdir(parents=True, exist_ok=True)
    path = Path(run.run_dir) / "trainer.log"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------- log tail


def test_tail_of_a_run_without_a_directory_or_a_log_is_empty(run, tmp_path):
    run.run_dir = ""
    assert tail(run) == []
    run.run_dir = str(tmp_path / "nothing-here")
    assert tail(run) == []
    (tmp_path / "dir-log" / "trainer.log").mkdir(parents=True)
    run.run_dir = str(tmp_path / "dir-log")
    assert tail(run) == []


def test_tail_returns_the_last_lines_cleaned(run, tmp_path):
    junk = b"bad bytes \xff\xfe here\x00\x07 bell"
    progress = b"step 1/5\rstep 2/5\rstep 3/5"
    body = b"".join(b"line %d\n" % i for i in range(300)) + junk + b"\n" + progress + b"\n" + b"x" * 5000 + b"\n"
    write_log(run, tmp_path, body)
    lines = tail(run, lines=100)
    assert len(lines) == 100
    assert lines[0] == "line 203" and lines[96] == "line 299"
    assert lines[97] == "bad bytes \ufffd\ufffd here\ufffd\ufffd bell"
    assert lines[98] == "step 3/5"  # what the terminal would show after the carriage returns
    assert lines[99] == "x" * MAX_LINE_CHARS + " …"
    assert tail(run, lines=3)[0] == lines[97]


def test_tail_reads_only_the_end_of_a_large_log(run, tmp_path):
    line = b"0123456789" * 10 + b"\n"  # 101 bytes
    count = (4 * MAX_BYTES) // len(line)
    path = write_log(run, tmp_path, b"FIRST LINE\n" + line * count + b"last line\n")
    lines = tail(run, lines=10**6)
    assert lines[-1] == "last line"
    assert "FIRST LINE" not in lines
    # Whole lines only, from the window of MAX_BYTES at the end: the cut line at its start is dropped.
    assert all(entry == line.decode().rstrip("\n") for entry in lines[:-1])
    assert len(lines) <= MAX_BYTES // len(line) + 1
    assert path.stat().st_size > 3 * MAX_BYTES


def test_tail_of_a_fifo_does_not_block(run, tmp_path):
    run.run_dir = str(tmp_path)
    os.mkfifo(tmp_path / "trainer.log")
    started = time.monotonic()
    assert tail(run) == []
    assert time.monotonic() - started < 1


# ---------------------------------------------------------------------------------------- stats


def test_latest_metrics_evals_and_eta(running):
    assert latest_metrics(running) == [] and eta_seconds(running) is None
    log_points(running, range(1, 4))
    running.current_step = 3
    running.save()
    latest = {m.name: (m.step, m.text) for m in latest_metrics(running)}
    assert latest["critic/score/mean"] == (3, "0.3")
    assert latest["actor/entropy_loss"] == (3, "1.2")
    assert latest["response_length/clip_ratio"] == (3, "0.25")
    # 10 s per step, 2 of the 5 steps left.
    assert eta_seconds(running) == pytest.approx(20.0)
    MetricPoint.upsert(running, [Point("val/arith-eval/avg@4", 2, 0.4), Point("val/arith-eval/avg@4", 3, 0.45)])
    MetricPoint.upsert(running, [Point("val/arith-eval/pass@4", 3, 0.7)])
    assert [(e.label, e.step, e.value) for e in latest_evals(running)] == [("arith-eval/avg@4", 3, 0.45)]
    running.transition_to(RunStatus.SUCCEEDED)
    assert eta_seconds(running) is None


def test_eta_uses_the_recent_steps_only(running):
    log_points(running, range(1, 11), seconds_per_step=100.0)
    log_points(running, range(11, 31), start=1_950.0, seconds_per_step=5.0)
    running.total_steps, running.current_step = 130, 30
    running.save()
    assert eta_seconds(running) == pytest.approx(100 * 5.0)


def test_durations_read_like_a_clock():
    assert [format_duration(s) for s in (None, 4, 75, 3_720, 200_000)] == [
        "—",
        "4 s",
        "1 min 15 s",
        "1 h 02 min",
        "2 d 7 h",
    ]


# ---------------------------------------------------------------------------------------- run page


def test_run_page_without_log_or_metrics(client, alice, running):
    client.force_login(alice)
    html = client.get(reverse("run-detail", args=[running.pk])).content.decode()
    assert "No log yet." in html and "No metrics yet." in html
    assert "0 / 5" in html and "1 of 2: short (64 response tokens)" in html
    for name in ("run-status", "run-log", "run-events"):  # each panel follows the run
        tag = html[html.index(f'id="{name}"') :].split(">", 1)[0]
        assert f'hx-get="{reverse(name, args=[running.pk])}"' in tag and POLL in tag


def test_run_page_with_log_metrics_and_eta(client, alice, running, tmp_path):
    write_log(running, tmp_path, b"".join(b"trainer says %d\n" % i for i in range(150)) + b"<script>x</script>\n")
    log_points(running, range(1, 5))
    MetricPoint.upsert(running, [Point("val/arith-eval/avg@4", 4, 0.375)])
    running.current_stage, running.current_step = 1, 4
    running.save()
    client.force_login(alice)
    html = client.get(reverse("run-detail", args=[running.pk])).content.decode()
    assert "trainer says 149" in html and "trainer says 51" in html and "trainer says 50\n" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert "4 / 5" in html and "2 of 2: long (128 response tokens)" in html
    assert 'data-metric="critic/score/mean"' in html and ">0.4<" in html
    assert 'data-metric="actor/entropy_coeff_realized"' in html and ">0.002<" in html
    assert "Eval arith-eval/avg@4" in html and ">0.375<" in html
    assert '<dd id="run-eta">10 s</dd>' in html


def test_run_partials_render_and_stop_polling_once_the_run_ends(client, alice, running, tmp_path):
    client.force_login(alice)
    urls = {name: reverse(name, args=[running.pk]) for name in ("run-status", "run-log", "run-events")}
    for url in urls.values():
        response = client.get(url)
        assert response.status_code == 200 and POLL in response.content.decode()
    assert "No log yet." in client.get(urls["run-log"]).content.decode()
    write_log(running, tmp_path, b"hello from the trainer\n")
    assert "hello from the trainer" in client.get(urls["run-log"]).content.decode()
    running.transition_to(RunStatus.FAILED, reason="exit code 1", exit_code=1)
    for url in urls.values():
        html = client.get(url).content.decode()
        assert "hx-get" not in html and "hx-trigger" not in html
    status = client.get(urls["run-status"]).content.decode()
    assert "badge-failed" in status and "exit code 1" in status and "Cancel run" not in status
    assert "failed" in client.get(urls["run-events"]).content.decode()


# ---------------------------------------------------------------------------------------- cancel


@pytest.fixture
def viewer(make_user, team):
    user = make_user("victor")
    add_member(team, user, Membership.Role.VIEWER)
    return user


def test_cancel_button_while_active_for_writers_only(client, alice, viewer, running):
    client.force_login(alice)
    cancel_url = reverse("run-cancel", args=[running.pk])
    assert f'action="{cancel_url}"' in client.get(reverse("run-status", args=[running.pk])).content.decode()
    client.force_login(viewer)
    assert cancel_url not in client.get(reverse("run-status", args=[running.pk])).content.decode()
    assert client.post(cancel_url).status_code == 403
    running.refresh_from_db()
    assert running.status == RunStatus.RUNNING


def test_cancel_a_queued_run(client, alice, run):
    client.force_login(alice)
    response = client.post(reverse("run-cancel", args=[run.pk]))
    assert response.status_code == 302 and response.url == reverse("run-detail", args=[run.pk])
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    again = client.post(reverse("run-cancel", args=[run.pk]), follow=True)
    assert "there is nothing to cancel" in again.content.decode()


def test_cancel_a_running_run_moves_it_to_cancelling(client, alice, running):
    client.force_login(alice)
    client.post(reverse("run-cancel", args=[running.pk]))
    running.refresh_from_db()
    assert running.status == RunStatus.CANCELLING
    status = client.get(reverse("run-status", args=[running.pk])).content.decode()
    assert "badge-cancelling" in status and "Cancel run" not in status and POLL in status


def test_cancel_is_post_only(client, alice, running):
    client.force_login(alice)
    assert client.get(reverse("run-cancel", args=[running.pk])).status_code == 405


# ---------------------------------------------------------------------------------------- runs list


@pytest.fixture
def other_team_run(make_user, spec_data):
    bob = make_user("bob")
    team = Team.objects.create(name="Beta", slug="beta")
    add_member(team, bob, Membership.Role.OWNER)
    project = Project.objects.create(team=team, name="Secret", slug="secret")
    experiment = create_experiment_from_spec(project=project, user=bob, spec=spec_data, name="beta-secret-exp")
    return create_run(experiment, user=bob)


def test_runs_list_shows_every_visible_run(client, alice, running, experiment, other_team_run):
    finished = create_run(experiment, user=alice)
    finished.transition_to(RunStatus.CANCELLED)
    log_points(running, range(1, 3))
    running.current_step = 2
    running.save()
    client.force_login(alice)
    html = client.get(reverse("run-list")).content.decode()
    assert reverse("run-detail", args=[running.pk]) in html and reverse("run-detail", args=[finished.pk]) in html
    assert reverse("run-detail", args=[other_team_run.pk]) not in html and "beta-secret-exp" not in html
    assert '<span class="badge badge-running">Running</span>' in html
    assert '<span class="badge badge-cancelled">Cancelled</span>' in html
    row = html[html.index(f'data-run="{running.pk}"') :].split("</tr>")[0]
    assert "1: short" in row and "2 / 5" in row and "30 s" in row  # ETA: 3 steps left at 10 s each
    assert "<td>0.2</td>" in row and "<td>1.3</td>" in row  # last reward and entropy
    assert POLL in html  # a run in the list can still change
    table = client.get(reverse("run-list-table")).content.decode()
    assert table.lstrip().startswith("<section") and 'id="runs-table"' in table
    active = client.get(reverse("run-list") + "?active=1").content.decode()
    assert reverse("run-detail", args=[running.pk]) in active
    assert reverse("run-detail", args=[finished.pk]) not in active
    assert f'hx-get="{reverse("run-list-table")}?active=1"' in active


def test_runs_list_stops_polling_when_every_run_has_ended(client, alice, run):
    run.transition_to(RunStatus.CANCELLED)
    client.force_login(alice)
    html = client.get(reverse("run-list")).content.decode()
    assert "badge-cancelled" in html and "hx-trigger" not in html


def test_runs_pages_need_a_login_and_hide_other_teams(client, alice, other_team_run):
    for url in (reverse("run-list"), reverse("run-log", args=[other_team_run.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(alice)
    for name in ("run-log", "run-events", "run-status", "run-detail"):
        assert client.get(reverse(name, args=[other_team_run.pk])).status_code == 404
    assert client.post(reverse("run-cancel", args=[other_team_run.pk])).status_code == 404
    assert "No runs." in client.get(reverse("run-list")).content.decode()
