"""Slurm clusters as data: credentials encrypted and never shown back, the admin that registers a cluster, the
cluster choice in the experiment editor, launch_run's check of it, and the Slurm facts on the run page.

One test pings the local cluster (deploy/services/slurm_up.sh) with tokens minted from an uploaded key; it skips
without the cluster or a readable key (and fails in CI without the cluster).
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from experiments.actions import create_experiment_from_spec, create_run, launch_run
from experiments.models import Experiment, Run, RunStatus, SlurmCluster, SlurmJob
from experiments.secrets import SecretUnreadable, decrypt, encrypt

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJvcjEifQ.c2lnbmF0dXJlLW9mLWEtdG9rZW4"
REPO = Path(__file__).resolve().parents[2]


class FormFields(HTMLParser):
    """What a browser submits for ``form#editor``: inputs, checked boxes, selected options, text areas."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self._form = self._select = self._area = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = a.get("id")
        if self._form != "editor":
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type", "text") not in ("submit", "button", "checkbox"):
            self.fields[name] = a.get("value", "")
        elif tag == "input" and name and "checked" in a:
            self.fields[name] = a.get("value", "on")
        elif tag == "select":
            self._select = name
            self.options[name] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a.get("value", ""))
            if "selected" in a or self._select not in self.fields:
                self.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._area = name
            self.fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._area = None
        elif tag == "form":
            self._form = None

    def handle_data(self, data):
        if self._area:
            self.fields[self._area] += data.removeprefix("\n") if not self.fields[self._area] else data


@pytest.fixture
def cluster(team) -> SlurmCluster:
    cluster = SlurmCluster(team=team, name="hpc", rest_url="http://slurm-head:6820", user="or1", runs_dir="/runs")
    cluster.set_token(TOKEN)
    cluster.save()
    return cluster


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "x"))
    return client


# ------------------------------------------------------------------------------------------------ secrets


def test_secrets_are_encrypted_with_a_fresh_iv_and_survive_a_key_rotation_through_the_fallbacks(settings):
    stored = encrypt(b"the token")
    assert b"the token" not in stored.encode() and encrypt(b"the token") != stored
    assert decrypt(stored) == b"the token"
    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY="a-new-secret-key-of-enough-length-0123456789", SECRET_KEY_FALLBACKS=[old]):
        assert decrypt(stored) == b"the token"
    with override_settings(SECRET_KEY="a-new-secret-key-of-enough-length-0123456789", SECRET_KEY_FALLBACKS=[]):
        with pytest.raises(SecretUnreadable, match="set the secret again in the admin"):
            decrypt(stored)


def test_a_cluster_stores_its_token_encrypted_and_builds_a_client_with_it(cluster):
    row = SlurmCluster.objects.get(pk=cluster.pk)
    assert TOKEN not in row.token_encrypted and decrypt(row.token_encrypted).decode() == TOKEN
    assert row.credentials == "token" and str(row) == "alpha/hpc"
    with row.client(timeout=2) as client:
        assert (client.base_url, client.adapter.version, client.user, client.timeout) == (
            "http://slurm-head:6820", "v0.0.38", "or1", 2,
        )  # fmt: skip
    row.set_jwt_key(b"k" * 32)
    row = SlurmCluster.objects.get(pk=cluster.pk)
    assert (row.credentials, row.token_encrypted) == ("key", "") and decrypt(row.jwt_key_encrypted) == b"k" * 32


# -------------------------------------------------------------------------------------------------- admin


def _admin_form(cluster_fields: dict) -> dict:
    return {
        "name": "local",
        "rest_url": "http://127.0.0.1:6820",
        "api_version": "v0.0.38",
        "user": "slurmci",
        "token_lifespan_s": "3600",
        "trainer_command": "or1-train",
        "runs_dir": "/shared/or1/runs",
        "job_template": "source /shared/or1/.venv/bin/activate",
        "jwt_key_file": "",
        "partition": "",
        "account": "",
        "qos": "",
        "ingest_url": "",
    } | cluster_fields


def test_the_admin_registers_a_cluster_and_never_shows_its_token_back(admin_client, team):
    add = reverse("admin:experiments_slurmcluster_add")
    refused = admin_client.post(add, _admin_form({"team": team.pk}))
    assert refused.status_code == 200 and "the cluster needs credentials" in refused.content.decode()

    created = admin_client.post(add, _admin_form({"team": team.pk, "new_token": f"SLURM_JWT={TOKEN}"}))
    assert created.status_code == 302, created.content.decode()[:2000]
    cluster = SlurmCluster.objects.get(name="local")
    assert decrypt(cluster.token_encrypted).decode() == TOKEN  # `scontrol token`'s prefix was dropped

    change = reverse("admin:experiments_slurmcluster_change", args=[cluster.pk])
    html = admin_client.get(change).content.decode()
    assert TOKEN not in html and cluster.token_encrypted not in html
    assert "token: set" in html and 'type="password"' in html
    listing = admin_client.get(reverse("admin:experiments_slurmcluster_changelist")).content.decode()
    assert "token: set" in listing and TOKEN not in listing

    # Saving other settings keeps the token; typing a new one replaces it; uploading a key switches to it.
    kept = admin_client.post(change, _admin_form({"team": team.pk, "partition": "debug"}))
    assert kept.status_code == 302
    cluster.refresh_from_db()
    assert cluster.partition == "debug" and decrypt(cluster.token_encrypted).decode() == TOKEN
    admin_client.post(change, _admin_form({"team": team.pk, "new_token": "second-token"}))
    cluster.refresh_from_db()
    assert decrypt(cluster.token_encrypted) == b"second-token"
    key = SimpleUploadedFile("jwt_hs256.key", b"\x00\x01key-bytes")
    admin_client.post(change, _admin_form({"team": team.pk, "new_jwt_key": key}))
    cluster.refresh_from_db()
    assert (cluster.credentials, cluster.token_encrypted) == ("key", "")
    assert decrypt(cluster.jwt_key_encrypted) == b"\x00\x01key-bytes"
    assert "JWT key: set" in admin_client.get(change).content.decode()

    both = admin_client.post(change, _admin_form({"team": team.pk, "new_token": "x", "jwt_key_file": "/k"}))
    assert "give one of a token, a key file upload or a key file path" in both.content.decode()
    relative = admin_client.post(change, _admin_form({"team": team.pk, "runs_dir": "runs"}))
    assert "must be an absolute path" in relative.content.decode()


def _local_cluster() -> tuple[str, str, Path]:
    env = dict(os.environ)
    for path in [os.environ.get("OR1_SERVICES_ENV"), REPO / "var/services.env"]:
        if path and Path(path).is_file():
            pairs = (line.partition("=") for line in Path(path).read_text().splitlines())
            env = {k.strip(): v.strip() for k, sep, v in pairs if sep} | env
            break
    url, key = env.get("SLURM_REST_URL"), Path(env.get("SLURM_JWT_KEY_FILE") or "/nonexistent")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("the local Slurm cluster is required in CI")
        pytest.skip("needs the local Slurm cluster (make services)")
    if not os.access(key, os.R_OK):
        pytest.skip(f"the cluster's JWT key {key} is not readable here")
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError as exc:
        pytest.skip(f"slurmrestd at {url} does not answer ({exc})")
    return url, env.get("SLURM_REST_USER", "slurmci"), key


@pytest.mark.slurm
def test_a_cluster_registered_with_its_key_mints_tokens_that_slurm_accepts(admin_client, team):
    url, user, key = _local_cluster()
    upload = SimpleUploadedFile("jwt_hs256.key", key.read_bytes())
    form = _admin_form({"team": team.pk, "rest_url": url, "user": user, "new_jwt_key": upload})
    assert admin_client.post(reverse("admin:experiments_slurmcluster_add"), form).status_code == 302
    cluster = SlurmCluster.objects.get(name="local")
    with cluster.client() as client:
        assert client.ping().ok
    pinged = admin_client.post(
        reverse("admin:experiments_slurmcluster_changelist"),
        {"action": "ping", "_selected_action": [cluster.pk]},
        follow=True,
    )
    assert "lpha/local: Slurm 22.05" in pinged.content.decode() and ", up" in pinged.content.decode()


# ------------------------------------------------------------------------------------- editor and launch


def test_the_editor_offers_the_teams_clusters_and_saves_the_chosen_one(client, alice, project, cluster):
    client.force_login(alice)
    url = reverse("experiment-new", args=[project.pk]) + "?template=cpu-demo"
    page = FormFields(client.get(url).content.decode())
    assert page.options["resources-cluster"] == ["", "hpc"]
    saved = client.post(url, page.fields | {"resources-launcher": "slurm", "resources-cluster": "hpc", "name": "s"})
    assert saved.status_code == 302
    assert Experiment.objects.get(name="s").spec["resources"] | {"launcher": "slurm", "cluster": "hpc"} == (
        Experiment.objects.get(name="s").spec["resources"]
    )

    stale = client.post(url, page.fields | {"resources-launcher": "slurm", "resources-cluster": "gone", "name": "t"})
    assert stale.status_code == 200 and not Experiment.objects.filter(name="t").exists()
    again = FormFields(stale.content.decode())
    assert again.fields["resources-cluster"] == "gone" and "gone" in again.options["resources-cluster"]
    assert "is not a Slurm cluster of this team (hpc)" in stale.content.decode()


def test_launching_a_slurm_run_needs_one_of_the_teams_clusters(project, alice, spec_data, cluster):
    spec = spec_data | {"resources": {"launcher": "slurm"}}
    experiment = create_experiment_from_spec(project=project, user=alice, spec=spec)
    with pytest.raises(ValidationError) as missing:
        launch_run(experiment, alice)
    assert missing.value.message_dict == {"resources.cluster": ["is required: choose one of hpc"]}
    with pytest.raises(ValidationError, match="no Slurm cluster 'elsewhere' in Alpha: choose one of hpc"):
        launch_run(experiment, alice, spec=spec | {"resources": {"launcher": "slurm", "cluster": "elsewhere"}})
    assert not Run.objects.exists()
    run = launch_run(experiment, alice, spec=spec | {"resources": {"launcher": "slurm", "cluster": "hpc"}})
    assert (run.launcher, run.status) == ("slurm", RunStatus.QUEUED)


# ------------------------------------------------------------------------------------------------ run page


def test_the_run_page_shows_the_slurm_job_its_state_reason_and_nodes(client, alice, project, spec_data, cluster):
    spec = spec_data | {"name": "on-hpc", "resources": {"launcher": "slurm", "cluster": "hpc", "max_restarts": 1}}
    run = create_run(create_experiment_from_spec(project=project, user=alice, spec=spec), user=alice)
    SlurmJob.objects.create(
        run=run, cluster=cluster, cluster_name=str(cluster), attempt=0, job_id=41, state="NODE_FAIL",
        node_list="gpu07", exit_signal=9,
    )  # fmt: skip
    Run.objects.filter(pk=run.pk).update(restarts=1)
    SlurmJob.objects.create(
        run=run, cluster=cluster, cluster_name=str(cluster), attempt=1, job_id=42, state="PENDING",
        reason="Priority", last_error="job 42: Slurm controller unreachable",
    )  # fmt: skip
    client.force_login(alice)
    html = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert 'id="run-slurm"' in html and "alpha/hpc" in html
    assert "<code>42</code> · attempt 2" in html and "Priority" in html and "PENDING" in html
    assert "Earlier attempts: job 41 NODE_FAIL on gpu07" in html
    assert "job 42: Slurm controller unreachable" in html
    local = create_run(create_experiment_from_spec(project=project, user=alice, spec=spec_data), user=alice)
    assert 'id="run-slurm"' not in client.get(reverse("run-detail", args=[local.pk])).content.decode()
