"""The experiment editor, driven as a browser would: GET the page, read every input of the form from the HTML,
change some, POST it back, and read the errors from each field's container (``id="error-<field>"``).

Covers: starting from a recipe template and from an experiment (duplicate and edit), saving to an Experiment,
launching it, every kind of spec error shown at its own field and in the summary, nothing typed lost on an
error (dynamic rows included), the row operations (add, remove, reorder, registered sources), and roles.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from experiments.actions import add_member, create_experiment_from_spec
from experiments.models import DatasetSource, Experiment, Membership, Project, Run, Team
from or1_train.spec import parse_spec

VOID = {"input", "br", "meta", "link", "img", "hr", "source", "col", "wbr", "area", "base", "param", "track"}


class Page(HTMLParser):
    """The fields of ``form#editor`` as a browser would submit them, and the text of every element by id."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self.order: list[str] = []
        self.text: dict[str, str] = {}
        self.ids: set[str] = set()
        self.anchors: list[str] = []
        self._stack: list[tuple[str, str | None]] = []
        self._in_form = False
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._option: tuple[str, bool] | None = None
        self._textarea: str | None = None
        self._textarea_text = ""
        self.feed(html)

    def _set(self, name: str, value: str) -> None:
        if name not in self.fields:
            self.order.append(name)
        self.fields[name] = value

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "form" and a.get("id") == "editor":
            self._in_form = True
        if tag == "a" and a.get("href", "").startswith("#"):
            self.anchors.append(a["href"][1:])
        if self._in_form and a.get("name"):
            if tag == "input" and a.get("type", "text") not in ("submit", "button", "checkbox"):
                self._set(a["name"], a.get("value", ""))
            elif tag == "input" and a.get("type") == "checkbox" and "checked" in a:
                self._set(a["name"], a.get("value", "on"))
            elif tag == "select":
                self._select, self._options = a["name"], []
            elif tag == "textarea":
                self._textarea, self._textarea_text = a["name"], ""
        if tag == "option" and self._select:
            self._option = (a.get("value", ""), "selected" in a)
            self._options.append(self._option)
        if tag not in VOID:
            self._stack.append((tag, a.get("id")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        if tag == "select" and self._select:
            chosen = next((v for v, sel in self._options if sel), self._options[0][0] if self._options else "")
            self._set(self._select, chosen)
            self._select = None
        if tag == "textarea" and self._textarea:
            self._set(self._textarea, self._textarea_text.removeprefix("\n"))
            self._textarea = None
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._textarea:
            self._textarea_text += data
        for _, element_id in self._stack:
            if element_id:
                self.text[element_id] = self.text.get(element_id, "") + data

    def error(self, field: str) -> str:
        """The text of a field's error container (it exists, empty, for every field)."""
        assert f"error-{field}" in self.ids, f"no error container for {field}"
        return self.id_text(f"error-{field}")

    def id_text(self, element_id: str) -> str:
        return " ".join(self.text.get(element_id, "").split())


def page_of(response) -> Page:
    return Page(response.content.decode())


def partial(response) -> Page:
    """A table that htmx swaps in, read as part of the editor's form."""
    return Page(f'<form id="editor">{response.content.decode()}</form>')


def typed(fields: dict[str, str]) -> dict[str, str]:
    """What the user typed: the fields without the CSRF token (masked afresh on every page)."""
    return {k: v for k, v in fields.items() if k != "csrfmiddlewaretoken"}


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


def new_url(project, template: str = "cpu-demo") -> str:
    return reverse("experiment-new", args=[project.pk]) + f"?template={template}"


def small_cpu_demo(fields: dict[str, str]) -> dict[str, str]:
    """The CPU demo recipe's form, shortened to a few steps (what a researcher trying it out would type)."""
    return fields | {
        "name": "cpu-demo-short",
        "stages-0-steps": "3",
        "stages-1-steps": "2",
        "entropy-target": "0.25",
    }


# ---------------------------------------------------------------------------------------- starting points


def test_new_experiment_page_offers_every_recipe_and_the_projects_experiments(logged_in, project, experiment):
    response = logged_in.get(reverse("experiment-new", args=[project.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    for name, title in [
        ("cpu-demo", "CPU demo"),
        ("or1-math-7b", "Skywork-OR1-Math-7B"),
        ("or1-7b", "Skywork-OR1-7B"),
        ("or1-32b", "Skywork-OR1-32B"),
    ]:
        assert f"?template={name}" in html and title in html
    assert reverse("experiment-duplicate", args=[experiment.pk]) in html


@pytest.mark.parametrize("template", ["cpu-demo", "or1-math-7b", "or1-7b", "or1-32b"])
def test_each_recipe_opens_in_the_editor_and_saves_unchanged(logged_in, project, template):
    page = page_of(logged_in.get(new_url(project, template)))
    response = logged_in.post(new_url(project, template), page.fields)
    assert response.status_code == 302, page_of(response).id_text("problems")
    experiment = Experiment.objects.get(project=project, name=template)
    from experiments.forms.recipes import recipe

    # The stored spec means exactly what the recipe file says.
    assert parse_spec(experiment.spec) == parse_spec(recipe(template).spec)


def test_the_editor_starts_from_the_recipes_values_with_shares_and_n_sgd(logged_in, project):
    response = logged_in.get(new_url(project))
    page = page_of(response)
    f = page.fields
    assert f["name"] == "cpu-demo"
    assert f["model-path"] == "var/models/cpu-demo-h128l4-v99c60" and f["model-dtype"] == "float32"
    assert f["model-bootstrap-build"] == "on" and f["model-bootstrap-hidden_size"] == "128"
    assert f["model-bootstrap-distill_levels"] == "1, 4"
    assert f["sources-TOTAL_FORMS"] == "2" and f["stages-TOTAL_FORMS"] == "2"
    assert f["sources-1-name"] == "arith-hard"
    assert f["sources-0-extra"] == (
        "synthetic: {task: arith, num_problems: 2000, levels: [1, 2], max_value: 99, seed: 1}"
    )
    assert f["stages-1-max_response_tokens"] == "64" and f["stages-0-mini_batch"] == "16"
    assert f["entropy-target"] == "0.11" and f["entropy-variant"] == "released-scripts"
    assert f["resources-launcher"] == "local"
    # Fields the recipe leaves out start at the spec's defaults, and the defaults are shown.
    assert f["loss-kl_estimator"] == "k3" and f["optim-betas"] == "0.9, 0.999"
    html = response.content.decode()
    assert "default: 0.2" in html and "default: 1e-06" in html
    assert [page.id_text(f"share-{i}") for i in (0, 1)] == ["66.7%", "33.3%"]
    assert [page.id_text(f"n-sgd-{i}") for i in (0, 1)] == ["1", "1"]
    assert [page.id_text(f"start-{i}") for i in (0, 1)] == ["0", "30"]
    assert "- name: arith-eval" in f["evaluation-sets"]


def test_a_recipe_whose_name_is_taken_gets_a_free_name(logged_in, project, alice, spec_data):
    create_experiment_from_spec(project=project, user=alice, spec=spec_data | {"name": "cpu-demo"})
    assert page_of(logged_in.get(new_url(project))).fields["name"] == "cpu-demo-2"


def test_an_unknown_recipe_is_404(logged_in, project):
    assert logged_in.get(new_url(project, "no-such-recipe")).status_code == 404


# ---------------------------------------------------------------------------------------- form -> launch


def test_form_to_experiment_to_launch(logged_in, project):
    page = page_of(logged_in.get(new_url(project)))
    response = logged_in.post(new_url(project), small_cpu_demo(page.fields) | {"tags": "demo, short"})
    experiment = Experiment.objects.get(project=project, name="cpu-demo-short")
    assert response.status_code == 302 and response.url == reverse("experiment-detail", args=[experiment.pk])
    spec = experiment.spec
    assert [s["steps"] for s in spec["stages"]] == [3, 2]
    assert [s["max_response_tokens"] for s in spec["stages"]] == [30, 64]
    assert spec["entropy"]["target"] == 0.25 and spec["entropy"]["max_coef"] == 0.005
    synthetic = {"task": "arith", "num_problems": 2000, "levels": [1, 2], "max_value": 99, "seed": 1}
    assert spec["data"]["sources"][0]["synthetic"] == synthetic
    assert spec["model"]["bootstrap"]["distill_steps"] == 800
    assert spec["evaluation"]["sets"][0]["name"] == "arith-eval"
    # Shaped like the recipe: keys the recipe wrote out stay (rollout.engine is the default "vllm"), defaults it
    # left out stay out (the loss's kl_estimator), and nothing is a string any more.
    assert spec["rollout"] == {"engine": "vllm"} and "kl_estimator" not in spec["loss"]
    assert experiment.tags == ["demo", "short"] and experiment.parent is None

    detail = logged_in.get(response.url).content.decode()
    launch_url = reverse("experiment-launch", args=[experiment.pk])
    assert f'action="{launch_url}"' in detail and reverse("experiment-duplicate", args=[experiment.pk]) in detail

    launched = logged_in.post(launch_url)
    run = Run.objects.get(experiment=experiment)
    assert launched.status_code == 302 and launched.url == reverse("run-detail", args=[run.pk])
    assert run.spec_as_launched == parse_spec(spec).model_dump(mode="json")
    assert run.total_steps == 5 and run.launcher == "local"
    experiment.spec["entropy"]["target"] = 0.5  # editing the experiment later does not touch the run
    experiment.save()
    run.refresh_from_db()
    assert run.spec_as_launched["entropy"]["target"] == 0.25


def test_launch_is_post_only(logged_in, experiment):
    assert logged_in.get(reverse("experiment-launch", args=[experiment.pk])).status_code == 405


# ---------------------------------------------------------------------------------------- errors at fields

ERROR_CASES = [
    # (what the researcher typed, the field whose error container must hold the message, words of the message)
    ({"stages-1-max_response_tokens": "16"}, "stages-1-max_response_tokens", "must be at least stage 1's (30)"),
    (
        {"stages-0-rollout_batch": "16", "stages-0-mini_batch": "6"},
        "stages-0-rollout_batch",
        "must be a multiple of the mini-batch (6)",
    ),
    (
        {"entropy-min_coef": "0.01", "entropy-initial_coef": "0.001"},
        "entropy-initial_coef",
        "must lie between the min coefficient (0.01) and the max coefficient (0.005)",
    ),
    ({"sources-1-weight": "0"}, "sources-1-weight", "must be greater than 0"),
    ({"sources-0-weight": "-2"}, "sources-0-weight", "a source with no weight would never be sampled"),
    ({"stages-0-group_size": "1"}, "stages-0-group_size", "a group needs at least 2 responses"),
    ({"stages-1-temperature": "0"}, "stages-1-temperature", "sampling needs a temperature above 0"),
    (
        {"stages-1-max_response_tokens": "480"},
        "stages-1-max_response_tokens",
        "prompt + response tokens come to 576, more than the model's context window (512 positions)",
    ),
    ({"model-path": ""}, "model-path", "is required"),
    ({"resources-nodes": "2"}, "resources-nodes", "more than one node needs the Slurm launcher"),
    ({"stages-0-steps": "ten"}, "stages-0-steps", "must be a whole number"),
    ({"entropy-target": "high"}, "entropy-target", "must be a number"),
    ({"optim-betas": "0.9, 1.5"}, "optim-betas", "item 2: must be less than 1"),
    ({"model-bootstrap-num_heads": "6"}, "model-bootstrap-num_heads", "must divide hidden size (128)"),
    ({"sources-0-extra": "synthetic: {levels: [3, 1]}"}, "sources-0-extra", "synthetic.levels: first level"),
    ({"sources-0-extra": "synthetic: {levels: [1, 3]"}, "sources-0-extra", "is not valid YAML"),
    ({"sources-0-extra": "weight: 3"}, "sources-0-extra", "only synthetic and difficulty can be set here"),
    ({"sources-1-name": "arith-easy"}, "sources-1-name", "'arith-easy' is used by another source"),
    ({"evaluation-sets": "- name: x\n  path: [oops"}, "evaluation-sets", "is not valid YAML (line 2"),
    ({"evaluation-sets": "- {name: e, path: a.jsonl}\n- {name: e, path: b.jsonl}"}, "evaluation-sets", "item 2.name"),
    ({"engine-zero_stage": "2"}, "engine-zero_stage", "ZeRO stages need engine.kind 'deepspeed'"),
    ({"name": ""}, "name", "is required"),
]


@pytest.mark.parametrize(("entry", "field", "words"), ERROR_CASES, ids=[case[1] for case in ERROR_CASES])
def test_each_spec_error_is_shown_at_its_field(logged_in, project, entry, field, words):
    page = page_of(logged_in.get(new_url(project)))
    submitted = small_cpu_demo(page.fields) | entry
    response = logged_in.post(new_url(project), submitted)
    assert response.status_code == 200
    assert not Experiment.objects.filter(project=project).exists()
    after = page_of(response)
    assert words in after.error(field), after.id_text("problems")
    # Only that field is marked: every other error container is empty.
    others = {k: v for k, v in after.text.items() if k.startswith("error-") and v.strip() and k != f"error-{field}"}
    assert others == {}
    # The summary at the top names the problem and links to the input.
    assert words in after.id_text("problems")
    assert f"id_{field}" in after.anchors
    # Nothing typed is lost: the form comes back exactly as submitted.
    assert typed(after.fields) == typed(submitted)


def test_several_errors_are_all_shown_each_at_its_field(logged_in, project):
    page = page_of(logged_in.get(new_url(project)))
    # Field errors come together; the cross-field rules (stage order, multiples, bounds) run once every field
    # is valid on its own (that is how the spec's models validate), and then come together too.
    fields = {"stages-1-temperature": "0", "stages-0-group_size": "1", "sources-1-weight": "0"}
    after = page_of(logged_in.post(new_url(project), small_cpu_demo(page.fields) | fields))
    assert "greater than 0" in after.error("stages-1-temperature")
    assert "at least 2" in after.error("stages-0-group_size")
    assert "greater than 0" in after.error("sources-1-weight")
    assert "3 problems to fix" in after.id_text("problems")
    rules = {"stages-1-max_response_tokens": "16", "stages-0-mini_batch": "6", "entropy-initial_coef": "0.5"}
    after = page_of(logged_in.post(new_url(project), small_cpu_demo(page.fields) | rules))
    assert "stage 1's (30)" in after.error("stages-1-max_response_tokens")
    assert "multiple of the mini-batch (6)" in after.error("stages-0-rollout_batch")
    assert "it is 0.5" in after.error("entropy-initial_coef")
    assert "3 problems to fix" in after.id_text("problems")


def test_a_name_already_used_in_the_project_is_shown_at_the_name(logged_in, project, experiment):
    page = page_of(logged_in.get(new_url(project)))
    after = page_of(logged_in.post(new_url(project), page.fields | {"name": experiment.name}))
    assert "already has an experiment named 'tiny'" in after.error("name")


def test_removing_every_source_and_stage_is_an_error_of_the_tables(logged_in, project):
    page = page_of(logged_in.get(new_url(project)))
    fields = {k: v for k, v in page.fields.items() if not k.startswith(("sources-", "stages-"))}
    fields |= {f"{p}-{k}": "0" for p in ("sources", "stages") for k in ("TOTAL_FORMS", "INITIAL_FORMS")}
    after = page_of(logged_in.post(new_url(project), fields))
    assert "must have at least 1 item" in after.error("sources")
    assert "must have at least 1 item" in after.error("stages")


# ---------------------------------------------------------------------------------------- dynamic rows


def row_op(client, url, fields, op, htmx=False, **extra):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(url, fields | {"row_op": op} | extra, **headers)


def test_add_a_stage_then_an_error_keeps_the_new_row_and_its_values(logged_in, project):
    url = new_url(project)
    page = page_of(logged_in.get(url))
    added = page_of(row_op(logged_in, url, page.fields, "stages:add"))
    assert added.fields["stages-TOTAL_FORMS"] == "3"
    # A new stage starts as a copy of the last one, without its name.
    assert added.fields["stages-2-max_response_tokens"] == "64" and added.fields["stages-2-name"] == ""
    entered = added.fields | {"stages-2-name": "longer", "stages-2-max_response_tokens": "50", "stages-2-steps": "4"}
    after = page_of(logged_in.post(url, entered))
    assert "must be at least stage 2's (64)" in after.error("stages-2-max_response_tokens")
    assert typed(after.fields) == typed(entered)
    fixed = logged_in.post(url, entered | {"stages-2-max_response_tokens": "256", "name": "three-stages"})
    assert fixed.status_code == 302
    stages = Experiment.objects.get(name="three-stages").spec["stages"]
    assert [(s.get("name"), s["max_response_tokens"], s["steps"]) for s in stages] == [
        ("short", 30, 30),
        ("long", 64, 40),
        ("longer", 256, 4),
    ]


def test_htmx_row_ops_answer_with_the_table_alone_renumbered(logged_in, project):
    url = new_url(project)
    fields = page_of(logged_in.get(url)).fields | {"stages-0-name": "first", "stages-1-name": "second"}
    response = row_op(logged_in, url, fields, "stages:down:0", htmx=True)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith("<section") and "<html" not in html
    assert 'id="stages-section"' in html
    moved = partial(response)
    assert moved.fields["stages-0-name"] == "second" and moved.fields["stages-1-name"] == "first"
    assert moved.fields["stages-0-max_response_tokens"] == "64"
    up = partial(row_op(logged_in, url, fields, "stages:up:1", htmx=True))
    assert up.fields["stages-0-name"] == "second"
    removed = partial(row_op(logged_in, url, fields, "stages:remove:0", htmx=True))
    assert removed.fields["stages-TOTAL_FORMS"] == "1" and removed.fields["stages-0-name"] == "second"
    assert "stages-1-name" not in removed.fields


def test_sources_rows_registered_sources_and_live_shares(logged_in, project, team):
    DatasetSource.objects.create(
        team=team, name="or1-math", path="/data/or1/math.parquet", format="parquet", num_prompts=48000
    )
    other = Team.objects.create(name="Other", slug="other")
    DatasetSource.objects.create(team=other, name="secret-set", path="/data/secret.jsonl")
    url = new_url(project)
    page = page_of(logged_in.get(url))
    html = logged_in.get(url).content.decode()
    assert "or1-math (48000 prompts)" in html and "secret-set" not in html
    registered = DatasetSource.objects.get(name="or1-math")
    fields = page.fields | {"sources-0-weight": "2"}
    response = row_op(logged_in, url, fields, "sources:add-registered", htmx=True, registered_source=registered.pk)
    added = partial(response)
    assert added.fields["sources-TOTAL_FORMS"] == "3"
    assert added.fields["sources-2-path"] == "/data/or1/math.parquet" and added.fields["sources-2-format"] == "parquet"
    assert added.fields["sources-0-weight"] == "2"  # the rows already there keep what was typed
    assert [added.id_text(f"share-{i}") for i in range(3)] == ["50.0%", "25.0%", "25.0%"]
    assert added.id_text("prompts-2") == "48000" and added.id_text("prompts-0") == "—"
    plain = partial(row_op(logged_in, url, fields, "sources:add", htmx=True))
    assert plain.fields["sources-2-path"] == "" and plain.fields["sources-2-weight"] == "1.0"
    removed = partial(row_op(logged_in, url, fields, "sources:remove:0", htmx=True))
    assert removed.fields["sources-0-name"] == "arith-hard" and removed.fields["sources-TOTAL_FORMS"] == "1"


def test_a_source_of_another_team_cannot_be_added(logged_in, project):
    source = DatasetSource.objects.create(team=Team.objects.create(name="O", slug="o"), name="x", path="/x")
    url = new_url(project)
    fields = page_of(logged_in.get(url)).fields
    response = row_op(logged_in, url, fields, "sources:add-registered", htmx=True, registered_source=source.pk)
    assert response.status_code == 400


def test_an_unknown_row_op_is_a_bad_request(logged_in, project):
    url = new_url(project)
    fields = page_of(logged_in.get(url)).fields
    assert row_op(logged_in, url, fields, "stages:explode:0").status_code == 400
    assert row_op(logged_in, url, fields, "model:add").status_code == 400


def test_without_javascript_a_row_op_re_renders_the_whole_page(logged_in, project):
    url = new_url(project)
    fields = page_of(logged_in.get(url)).fields | {"model-path": "typed/before/the/click"}
    after = page_of(row_op(logged_in, url, fields, "sources:add"))
    assert after.fields["model-path"] == "typed/before/the/click" and after.fields["sources-TOTAL_FORMS"] == "3"
    assert not Experiment.objects.exists()


# ---------------------------------------------------------------------------------------- duplicate and edit


def test_duplicate_and_edit_prefills_and_links_the_copy(logged_in, experiment):
    url = reverse("experiment-duplicate", args=[experiment.pk])
    page = page_of(logged_in.get(url))
    f = page.fields
    assert f["name"] == "tiny-2" and f["tags"] == "tiny"
    assert f["stages-0-mini_batch"] == "2" and f["stages-1-max_prompt_tokens"] == "128"
    assert f["sources-0-weight"] == "3" and f["sources-1-extra"] == "synthetic: {levels: [3, 4]}"
    assert f["entropy-target"] == "0.2"  # not in the spec: the default
    response = logged_in.post(url, f | {"entropy-target": "0.35"})
    copy = Experiment.objects.get(name="tiny-2")
    assert response.status_code == 302 and copy.parent == experiment and copy.project == experiment.project
    # The copy's spec is the original plus the one change.
    assert copy.spec == experiment.spec | {"name": "tiny-2", "entropy": {"target": 0.35}}
    detail = logged_in.get(reverse("experiment-detail", args=[copy.pk])).content.decode()
    assert "duplicated from" in detail


# ---------------------------------------------------------------------------------------- roles


@pytest.fixture
def viewer(make_user, team):
    user = make_user("victor")
    add_member(team, user, Membership.Role.VIEWER)
    return user


def test_a_viewer_can_neither_edit_nor_launch(client, viewer, project, experiment):
    client.force_login(viewer)
    refused = client.get(reverse("experiment-new", args=[project.pk]))
    assert refused.status_code == 403 and "viewers see everything but cannot create" in refused.content.decode()
    assert client.get(new_url(project)).status_code == 403
    assert client.post(new_url(project), {"name": "x"}).status_code == 403
    assert client.get(reverse("experiment-duplicate", args=[experiment.pk])).status_code == 403
    assert client.post(reverse("experiment-launch", args=[experiment.pk])).status_code == 403
    assert not Run.objects.exists()
    detail = client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert reverse("experiment-launch", args=[experiment.pk]) not in detail
    assert reverse("experiment-duplicate", args=[experiment.pk]) not in detail
    assert reverse("experiment-new", args=[project.pk]) not in client.get(reverse("home")).content.decode()


def test_home_links_each_writable_project_to_the_editor(logged_in, project):
    assert reverse("experiment-new", args=[project.pk]) in logged_in.get(reverse("home")).content.decode()


def test_a_spec_for_a_launcher_not_wired_up_yet_is_saved_but_not_launched(logged_in, project):
    page = page_of(logged_in.get(new_url(project)))
    saved = logged_in.post(new_url(project), page.fields | {"resources-launcher": "slurm", "name": "on-slurm"})
    assert saved.status_code == 302
    experiment = Experiment.objects.get(name="on-slurm")
    assert experiment.spec["resources"]["launcher"] == "slurm"
    response = logged_in.post(reverse("experiment-launch", args=[experiment.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("experiment-detail", args=[experiment.pk])
    assert "Cannot launch" in response.content.decode() and not Run.objects.exists()


def test_another_teams_project_and_experiment_are_404(client, make_user, project, experiment):
    outsider = make_user("olga")
    beta = Team.objects.create(name="Beta", slug="beta")
    add_member(beta, outsider, Membership.Role.OWNER)
    Project.objects.create(team=beta, name="Theirs", slug="theirs")
    client.force_login(outsider)
    assert client.get(new_url(project)).status_code == 404
    assert client.get(reverse("experiment-duplicate", args=[experiment.pk])).status_code == 404
    assert client.post(reverse("experiment-launch", args=[experiment.pk])).status_code == 404
    assert not Run.objects.exists()


def test_the_editor_needs_a_login(client, project):
    response = client.get(new_url(project))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


# ---------------------------------------------------------------------------------------- no drift


def test_every_field_of_the_spec_has_a_place_in_the_editor():
    """A field added to the spec shows up in the editor by itself (the forms are generated from the models);
    a new section or list has to be placed, and this test says so."""
    from experiments.forms import editor as e
    from or1_train.spec import DataMix, RunSpec

    placed = {"model", "data", "stages"} | {s.key for s in e.SECTIONS}
    assert set(RunSpec.model_fields) == placed | set(e.GeneralForm.fields_info)

    def not_generated(form) -> set[str]:
        return set(form.spec_model.model_fields) - set(form.fields_info)

    assert not_generated(e.ModelForm) == {"bootstrap"}  # the bootstrap form
    assert not_generated(e.SourceForm) == set(e.SOURCE_OPTIONS)  # the options box
    assert set(DataMix.model_fields) == {"sources"}  # the sources formset
    assert not_generated(e.BootstrapForm) == set() and not_generated(e.StageForm) == set()
    for section in e.SECTIONS:
        expected = {"sets"} if section.key == "evaluation" else set()  # the evaluation sets box
        assert not_generated(section.form) == expected, section.key
