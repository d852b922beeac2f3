"""The cast of the API, sharing and sweep tests: two teams, every role, and things each role touches.

Team Alpha: alice (owner), ada (admin), mo (member), vera (viewer); team Beta: bob (owner), the outsider.
Alpha has a project with a dataset source and mix, an experiment, a run launched by mo and one by alice
(both queued), metrics, an evaluation and a checkpoint whose files exist on disk, and a sweep by alice.
``api(user)`` is a DRF client authenticated with a fresh read-write personal token of that user;
``check(cast, api, cases)`` sends each case as each role and lists the status codes that differ from expected.

Imported by the test modules (``from tests.platform.api_cast import *``) so its fixtures register there.
Nothing here sends a Celery task: launching inside pytest-django's never-committed transaction leaves the
on-commit send unexecuted (the sweep fixture captures and drops those callbacks explicitly).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from tests.conftest import PASSWORD

__all__ = ["PASSWORD", "api", "cast", "fast_password_hashing"]

ROLES = ("owner", "admin", "member", "viewer", "outsider")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Every user here gets a password; the production hasher takes about a second per user on 2 cores."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Cast:
    users: dict[str, Any]
    alpha: Any
    beta: Any
    project: Any
    source: Any
    mix: Any
    experiment: Any
    own_run: Any  # launched by mo, the member
    other_run: Any  # launched by alice, the owner
    checkpoint: Any
    checkpoint_file: str
    evaluation: Any
    sweep: Any
    beta_run: Any


def write_checkpoint(root: Path, step: int) -> tuple[Path, dict]:
    """A checkpoint directory as the trainer writes it: model files and a manifest listing them."""
    directory = root / f"step-{step:06d}"
    (directory / "model").mkdir(parents=True)
    files = {"model/config.json": b'{"hidden_size": 64}', "model/model.safetensors": b"\x00weights\x01" * 64}
    listed = []
    for name, data in files.items():
        (directory / name).write_bytes(data)
        listed.append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"format": "or1lab-checkpoint/1", "step": step, "stage": 0, "files": listed, "metrics": {}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (root / "secret.txt").write_text("outside the checkpoint")
    return directory, manifest


@pytest.fixture
def cast(db, make_user, spec_data, tmp_path, django_capture_on_commit_callbacks) -> Cast:
    from experiments import sweeps
    from experiments.actions import add_member, create_experiment_from_spec, create_run
    from experiments.models import (
        Checkpoint,
        DatasetMix,
        DatasetMixEntry,
        DatasetSource,
        EvaluationResult,
        MetricPoint,
        Project,
        Team,
    )
    from experiments.models.metrics import Point

    names = {"owner": "alice", "admin": "ada", "member": "mo", "viewer": "vera", "outsider": "bob"}
    users = {role: make_user(name) for role, name in names.items()}
    alpha = Team.objects.create(name="Alpha", slug="alpha")
    beta = Team.objects.create(name="Beta", slug="beta")
    for role in ("owner", "admin", "member", "viewer"):
        add_member(alpha, users[role], role)
    add_member(beta, users["outsider"], "owner")
    project = Project.objects.create(team=alpha, name="Math RL", slug="math-rl")
    source = DatasetSource.objects.create(team=alpha, name="easy", path="/data/easy.jsonl")
    mix = DatasetMix.objects.create(team=alpha, name="mix")
    DatasetMixEntry.objects.create(mix=mix, source=source, weight=2.0)
    experiment = create_experiment_from_spec(project=project, user=users["owner"], spec=spec_data, tags=["tiny"])
    own_run = create_run(experiment, user=users["member"])
    other_run = create_run(experiment, user=users["owner"])
    MetricPoint.upsert(own_run, [Point("critic/score/mean", s, 0.1 * s, 1000.0 + s) for s in range(10)])
    directory, manifest = write_checkpoint(tmp_path / "ckpts", 4)
    checkpoint = Checkpoint.objects.create(
        run=own_run, step=4, stage=0, path=str(directory), manifest=manifest, size_bytes=100
    )
    evaluation = EvaluationResult.objects.create(
        run=own_run, checkpoint=checkpoint, benchmark="arith", k=2, num_samples=16, avg_at_k=0.5,
        pass_at_k=0.75, temperature=1.0, step=4,
    )
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweeps.create_sweep(
            experiment, users["owner"], name="targets", space={"grid": {"entropy.target": [0.1, 0.2]}},
            concurrency=1,
        )
    beta_project = Project.objects.create(team=beta, name="Other", slug="other")
    beta_experiment = create_experiment_from_spec(project=beta_project, user=users["outsider"], spec=spec_data)
    beta_run = create_run(beta_experiment, user=users["outsider"])
    return Cast(
        users, alpha, beta, project, source, mix, experiment, own_run, other_run, checkpoint,
        "model/config.json", evaluation, sweep, beta_run,
    )


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    from experiments.models import ApiToken

    def client(user, scope: str = "write"):
        _, secret = ApiToken.issue(user, name="tests", scope=scope)
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return c

    return client


def check(cast, api, cases) -> list[str]:
    """Each case for each role, in a rolled-back savepoint; the mismatches, in words."""
    clients = {role: api(cast.users[role]) for role in ROLES}
    wrong = []
    for name, method, url, body, expected in cases:
        seen = {}
        for role in ROLES:
            with transaction.atomic():
                response = getattr(clients[role], method)(url(cast), body(cast) if body else None, format="json")
                seen[role] = response.status_code
                if response.status_code >= 400:
                    assert set(response.json()) == {"status", "code", "detail", "errors"}, response.content
                    assert response.json()["status"] == response.status_code
                transaction.set_rollback(True)
        if seen != expected:
            wrong.append(f"{name}: got {seen}, expected {expected}")
    return wrong
