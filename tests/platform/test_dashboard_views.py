"""The dashboard views: the run page's chart data and increments, the comparison page (selection, config diff,
data endpoint), saved views and their roles, the rollout browser, and plotly.js served from the package."""

from __future__ import annotations

import json

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from experiments.actions import add_member, create_experiment_from_spec, create_run
from experiments.ingestion import store_metrics
from experiments.models import Membership, Project, SavedView, Team


def log(run, steps, *, entropy=lambda s: 0.3, extra=None):
    records = []
    for s in steps:
        metrics = {
            "actor/entropy_loss": entropy(s),
            "critic/score/mean": 0.01 * s,
            "perf/total_tokens": 100.0 * s,
            "response_length/clip_ratio": 0.1,
        }
        metrics.update((extra or {}).get(s, {}))
        records.append({"step": s, "stage": 0, "wall_time": 1000.0 + 10 * s, "metrics": metrics})
    store_metrics(run, {"records": records})


@pytest.fixture
def other_team_run(make_user, spec_data):
    bob = make_user("bob")
    team = Team.objects.create(name="Beta", slug="beta")
    add_member(team, bob, Membership.Role.OWNER)
    project = Project.objects.create(team=team, name="Secret", slug="secret")
    experiment = create_experiment_from_spec(project=project, user=bob, spec=spec_data, name="secret-exp")
    run = create_run(experiment, user=bob)
    log(run, range(1, 4))
    return run


def test_run_charts_panels_and_series(client, alice, run, other_team_run):
    log(run, range(1, 6), extra={5: {"val/math/avg@8": 0.4, "val/math/pass@8": 0.7}})
    url = reverse("run-charts", args=[run.pk])
    assert client.get(url).status_code == 302  # login first
    client.force_login(alice)
    data = client.get(url).json()
    ids = [p["id"] for p in data["panels"]]
    assert ids[:3] == ["entropy", "reward", "eval-math"] and "length" in ids and "timing" in ids
    entropy = data["panels"][0]
    assert [t["name"] for t in entropy["traces"]][:1] == ["actor/entropy_loss"]
    assert {"y0": 0.1, "y1": 0.4, "label": "healthy band (alert thresholds)"} in entropy["guides"]
    assert [t["label"] for t in data["panels"][2]["traces"]] == ["avg@8", "pass@8"]
    assert data["series"]["actor/entropy_loss"] == {"step": [1, 2, 3, 4, 5], "y": [0.3] * 5, "exact": True, "count": 5}
    assert data["series"]["~clock"]["y"] == [1010.0, 1020.0, 1030.0, 1040.0, 1050.0]
    assert [s["tokens"] for s in data["stages"]] == [64, 128] and data["live"] is True
    assert client.get(reverse("run-charts", args=[other_team_run.pk])).status_code == 404


def test_run_charts_increments(client, alice, run):
    log(run, range(1, 4))
    client.force_login(alice)
    url = reverse("run-charts", args=[run.pk])
    after = json.dumps({"actor/entropy_loss": 2, "~clock": 3, "val/math/avg@8": -1})
    data = client.get(url, {"after": after}).json()
    assert data["append"] == {"actor/entropy_loss": {"step": [3], "y": [0.3]}}
    assert data["reset"] is False and data["evals"] == []
    log(run, [4], extra={4: {"val/math/avg@8": 0.5}})
    data = client.get(url, {"after": after}).json()
    assert data["append"]["~clock"] == {"step": [4], "y": [1040.0]} and data["evals"] == ["val/math/avg@8"]
    assert client.get(url, {"after": "[1]"}).status_code == 400
    assert client.get(url, {"lo": "x"}).status_code == 400


@pytest.fixture
def target_runs(project, alice, spec_data):
    """Two experiments that differ in entropy.target (and their names), a run of each, one tagged."""
    runs = []
    for target, tags in ((0.2, ["ablation"]), (0.3, [])):
        spec = dict(spec_data, name=f"target-{target}", entropy={"target": target})
        experiment = create_experiment_from_spec(project=project, user=alice, spec=spec, tags=tags)
        run = create_run(experiment, user=alice)
        log(run, range(1, 21), entropy=lambda s, t=target: t + 0.001 * s)
        runs.append(run)
    return runs


def test_compare_page_diff_table_and_state(client, alice, target_runs, other_team_run):
    client.force_login(alice)
    ids = [r.pk for r in target_runs] + [other_team_run.pk]  # the other team's run is never shown
    page = client.get(reverse("compare"), {"runs": ",".join(map(str, ids))})
    assert page.status_code == 200
    rows = page.context["diff_rows"]
    assert [row["path"] for row in rows] == ["name", "entropy.target"]
    assert [[c["text"] for c in row["cells"]] for row in rows] == [["target-0.2", "target-0.3"], ["0.2", "0.3"]]
    assert [[c["changed"] for c in row["cells"]] for row in rows] == [[False, True], [False, True]]
    state = page.context["state"]
    assert [r["id"] for r in state["runs"]] == [r.pk for r in target_runs]
    assert state["runs"][1]["spec"]["entropy.target"] == 0.3
    assert state["metrics"] == ["actor/entropy_loss", "critic/score/mean", "response_length/clip_ratio"]
    assert state["group_paths"] == ["name", "entropy.target"]
    html = page.content.decode()
    assert '<tr data-path="entropy.target">' in html and 'class="changed"' in html


def test_compare_selection_by_filters(client, alice, target_runs):
    client.force_login(alice)
    by_tag = client.get(reverse("compare"), {"tag": "ablation"}).context["runs"]
    assert by_tag == [target_runs[0]]
    by_search = client.get(reverse("compare"), {"q": "target-0.3"}).context["runs"]
    assert by_search == [target_runs[1]]
    by_id = client.get(reverse("compare"), {"q": f"#{target_runs[0].pk}"}).context["runs"]
    assert by_id == [target_runs[0]]
    experiment = target_runs[1].experiment_id
    assert client.get(reverse("compare"), {"experiment": experiment}).context["runs"] == [target_runs[1]]
    assert client.get(reverse("compare")).context["runs"] == []  # nothing chosen yet: only the candidates


def test_compare_data_downsampled_with_maps(client, alice, target_runs, other_team_run, settings):
    settings.OR1_CHART_MAX_POINTS = 10
    client.force_login(alice)
    ids = ",".join(str(r.pk) for r in [*target_runs, other_team_run])
    plain = client.get(reverse("compare-data"), {"runs": ids, "metric": "actor/entropy_loss"}).json()
    assert "means" not in plain["series"][0] and "xmap" not in plain
    data = client.get(
        reverse("compare-data"), {"runs": ids, "metric": "actor/entropy_loss", "x": "tokens", "means": "1"}
    ).json()
    assert [s["run"] for s in data["series"]] == [r.pk for r in target_runs]
    assert data["buckets"] == {"lo": 0, "width": 8}  # 20 steps in buckets of at least one tile (8 steps)
    first = data["series"][0]
    assert first["count"] == 20 and not first["exact"] and len(first["step"]) <= 8
    assert first["means"]["b"] == [0, 1, 2] and first["means"]["n"] == [7, 8, 5]
    assert first["means"]["y"] == pytest.approx([0.2 + 0.001 * 4, 0.2 + 0.001 * 11.5, 0.2 + 0.001 * 18])
    assert first["final"] == [20, pytest.approx(0.22)] and first["max"][0] == 20 and first["min"][0] == 1
    assert data["xmap"][str(target_runs[0].pk)]["x"][-1] == 2000.0
    assert data["direction"] == 0
    zoom = client.get(reverse("compare-data"), {"runs": ids, "metric": "actor/entropy_loss", "lo": 5, "hi": 9}).json()
    assert zoom["series"][0]["exact"] and zoom["series"][0]["step"] == [5, 6, 7, 8, 9]
    assert client.get(reverse("compare-data"), {"runs": ids}).status_code == 400


def test_compare_data_says_whether_a_run_can_still_change(client, alice, target_runs):
    """The comparison polls while ``live`` (a compared run has not ended), and stops when every run has."""
    from experiments.models import RunStatus

    client.force_login(alice)
    ids = ",".join(str(r.pk) for r in target_runs)
    assert client.get(reverse("compare"), {"runs": ids}).context["state"]["poll_s"] == 10

    def live() -> bool:
        return client.get(reverse("compare-data"), {"runs": ids, "metric": "actor/entropy_loss"}).json()["live"]

    assert live()  # both queued
    for run, end in zip(target_runs, (RunStatus.SUCCEEDED, RunStatus.FAILED), strict=True):
        run.transition_to(RunStatus.STARTING)
        run.transition_to(end)
        assert live() is (end == RunStatus.SUCCEEDED)


def test_save_and_share_a_view(client, alice, make_user, team, target_runs):
    client.force_login(alice)
    query = f"runs={target_runs[0].pk},{target_runs[1].pk}&metrics=critic/score/mean&group=entropy.target&smooth=ema"
    response = client.post(reverse("compare-save"), {"name": "targets", "team": team.pk, "query": query})
    view = SavedView.objects.get(name="targets")
    assert response.url == reverse("compare-view", args=[view.pk])
    assert view.state["group"] == ["entropy.target"] and view.state["smooth"] == ["ema"]
    opened = client.get(response.url)
    assert opened.status_code == 302 and "group=entropy.target" in opened.url and f"view={view.pk}" in opened.url
    page = client.get(opened.url)
    assert page.context["view"] == view and page.context["metrics"] == ["critic/score/mean"]
    assert "saved view “targets”" in page.content.decode()

    viewer = make_user("vera")
    add_member(team, viewer, Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("compare-view", args=[view.pk])).status_code == 302  # viewers open it
    assert client.post(reverse("compare-save"), {"name": "x", "team": team.pk, "query": ""}).status_code == 403
    client.force_login(make_user("outsider"))
    assert client.get(reverse("compare-view", args=[view.pk])).status_code == 404


def test_rollout_browser(client, alice, run, tmp_path):
    from or1_train.data.schema import Example
    from or1_train.rollout.base import Sample
    from or1_train.rollout_log import record_groups
    from or1_train.trainer import Group

    def group(uid, rewards):
        samples = [
            Sample([1] * (3 + i), [-0.1] * (3 + i), "length" if i == 0 else "stop", f"<b>{uid}-{i}</b>")
            for i in range(len(rewards))
        ]
        return Group(Example(uid, [{"role": "user", "content": f"Solve {uid}"}], "7"), [1], samples, rewards)

    run.run_dir = str(tmp_path)
    run.save(update_fields=["run_dir"])
    client.force_login(alice)
    url = reverse("run-rollouts", args=[run.pk])
    assert "No rollouts recorded yet" in client.get(url).content.decode()
    kept, solved = group("p0", [1.0, 0.0, 1.0]), group("p1", [1.0, 1.0, 1.0])
    record_groups(tmp_path, 2, [kept, solved], kept=[kept], max_groups=4, seed=0)
    record_groups(tmp_path, 4, [kept], kept=[kept], max_groups=4, seed=0)
    page = client.get(url).content.decode()  # the newest step
    assert 'id="group-0" data-kept="1"' in page and "step 2</a>" in page
    page = client.get(url, {"step": 2}).content.decode()
    assert 'class="group filtered" id="group-1" data-kept="0"' in page and "filtered: all correct" in page
    assert "2/3 correct" in page and "&lt;b&gt;p0-0&lt;/b&gt;" in page and "<b>p0-0" not in page
    assert "· <strong>truncated</strong>" in page and "Solve p1" in page
    assert "has no recorded rollouts" in client.get(url, {"step": 3}).content.decode()


def test_plotly_comes_from_the_installed_package():
    import plotly

    found = finders.find("vendor/plotly.min.js")
    assert found and found.startswith(str(plotly.__path__[0]))
    listed = [
        (path, storage.prefix)
        for finder in finders.get_finders()
        for path, storage in finder.list(None)
        if path == "plotly.min.js"
    ]
    assert listed == [("plotly.min.js", "vendor")]
