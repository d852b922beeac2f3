"""Property-based fuzzing of the whole REST API against its own OpenAPI schema (schemathesis).

The schema is fetched from ``/api/schema/`` of the in-process WSGI app, and every operation gets a few
generated requests, sent as team Alpha's owner (read-write token) into the cast's data: path ids are swapped
for real ones half of the time, so requests reach real objects and not only 404s. Every response must be
no 5xx, have a status code the schema lists for the operation, and a body and content type matching it.

Bounded for the suite (4 valid and 4 invalid requests per operation, no shrinking, a fixed seed: the same
requests every run; about 30 s on 2 idle cores). Launches stay in pytest-django's never-committed
transaction, so no task reaches a broker. ``OR1_FUZZ_EXAMPLES=25`` makes a longer hunt (passes: 4 min).
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)

EXAMPLES = int(os.environ.get("OR1_FUZZ_EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def wsgi_app():
    """Django's WSGI app inside the test's transaction: it must not close the connection after a request,
    as the test client ensures for itself (the connection holds the uncommitted test data)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(cast, wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)


@pytest.fixture
def real_ids(cast):
    """A real object for each path of the API, so that generated requests also hit existing objects."""
    return {
        "teams": cast.alpha.pk,
        "projects": cast.project.pk,
        "dataset-sources": cast.source.pk,
        "dataset-mixes": cast.mix.pk,
        "experiments": cast.experiment.pk,
        "runs": cast.own_run.pk,
        "checkpoints": cast.checkpoint.pk,
        "evaluations": cast.evaluation.pk,
        "sweeps": cast.sweep.pk,
        "members": cast.users["viewer"].pk,
    }


@pytest.fixture
def owner_token(cast) -> str:
    from experiments.models import ApiToken

    return ApiToken.issue(cast.users["owner"], name="fuzz", scope="write")[1]


def test_the_api_keeps_to_its_schema(api_schema, owner_token, real_ids):
    """Each operation, valid and invalid generated requests; every failure is listed, not just the first."""
    headers = {"Authorization": f"Bearer {owner_token}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40  # every endpoint is in the schema

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def run(case):
                aim_at_real_objects(case, real_ids)
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Exception as exc:  # noqa: BLE001 (collected and reported below, with the operation)
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"[:2000])
    assert not failures, "\n\n".join(failures)


def aim_at_real_objects(case, real_ids) -> None:
    """Swap an even generated id for a real object's, so requests meet existing rows too."""
    resources = re.findall(r"/api/v1/([a-z-]+)/\{", case.path)
    for name, value in list((case.path_parameters or {}).items()):
        if isinstance(value, int) and value % 2 == 0:
            key = {"team_pk": "teams", "user_id": "members"}.get(name, resources[0] if resources else "")
            case.path_parameters[name] = real_ids.get(key, value)
