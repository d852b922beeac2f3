"""Fixtures shared by the platform, worker and end-to-end suites.

``spec_data`` is a tiny valid run spec (the CPU demo's shape, with a handful of steps); the database fixtures
build the usual cast: a team "Alpha" owned by alice, a project in it, an experiment of ``spec_data`` and a
queued run of it, all through ``experiments.actions`` as the views do. Django is imported inside the fixtures
so that the trainer's tests never need it.
"""

from __future__ import annotations

import copy

import pytest

TINY_SPEC = {
    "name": "tiny",
    "description": "Two short stages on the synthetic arithmetic task.",
    "model": {
        "path": "var/models/tiny",
        "dtype": "float32",
        "bootstrap": {
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "num_kv_heads": 1,
            "max_positions": 512,
        },
    },
    "data": {
        "sources": [
            {"name": "easy", "path": "var/data/easy.jsonl", "weight": 3, "synthetic": {"levels": [1, 2]}},
            {"name": "hard", "path": "var/data/hard.jsonl", "weight": 1, "synthetic": {"levels": [3, 4]}},
        ]
    },
    "stages": [
        {
            "name": "short",
            "steps": 3,
            "max_prompt_tokens": 128,
            "max_response_tokens": 64,
            "rollout_batch": 4,
            "mini_batch": 2,
            "group_size": 4,
        },
        {
            "name": "long",
            "steps": 2,
            "max_prompt_tokens": 128,
            "max_response_tokens": 128,
            "rollout_batch": 4,
            "mini_batch": 4,
            "group_size": 4,
        },
    ],
}

PASSWORD = "a-long-test-password-1"


@pytest.fixture
def spec_data() -> dict:
    """A fresh copy of a valid spec dict (tests may edit it)."""
    return copy.deepcopy(TINY_SPEC)


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def team(alice):
    from experiments.actions import add_member
    from experiments.models import Membership, Team

    team = Team.objects.create(name="Alpha", slug="alpha")
    add_member(team, alice, Membership.Role.OWNER)
    return team


@pytest.fixture
def project(team):
    from experiments.models import Project

    return Project.objects.create(team=team, name="Math RL", slug="math-rl")


@pytest.fixture
def experiment(project, alice, spec_data):
    from experiments.actions import create_experiment_from_spec

    return create_experiment_from_spec(project=project, user=alice, spec=spec_data, tags=["tiny"])


@pytest.fixture
def run(experiment, alice):
    from experiments.actions import create_run

    return create_run(experiment, user=alice)
