"""Custom eval sets uploaded in the browser: schema-checked per line, registered once for the team."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments.models import DatasetSource, Membership, Team
from or1_train.data.sources import read_source

GOOD = {"prompt": "What is 1+1?", "ground_truth": "2"}


@pytest.fixture
def team_client(client, make_user, settings, tmp_path):
    settings.OR1_DATASETS_DIR = tmp_path / "datasets"
    user = make_user("uploader")
    team = Team.objects.create(name="Alpha", slug="alpha")
    Membership.objects.create(team=team, user=user, role=Membership.Role.MEMBER)
    client.force_login(user)
    return client, team


def upload(client, team, name: str, filename: str, content: bytes):
    file = SimpleUploadedFile(filename, content)
    return client.post("/datasets/upload/", {"team": team.pk, "name": name, "file": file})


def jsonl(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def test_a_good_jsonl_is_stored_registered_and_reads_back_in_the_trainer(team_client):
    client, team = team_client
    or1_row = {"prompt": [{"role": "user", "content": "2+2?"}], "reward_model": {"ground_truth": "4"},
               "ability": "math"}
    response = upload(client, team, "mini", "mini.jsonl", jsonl(GOOD, or1_row))
    assert response.status_code == 302
    source = DatasetSource.objects.get(team=team, name="mini")
    assert (source.format, source.num_prompts) == ("jsonl", 2)
    assert [e.ground_truth for e in read_source(source.path).examples] == ["2", "4"]
    page = client.get("/datasets/upload/").content.decode()
    assert "mini" in page and "Registered mini (2 problems)" in page
    again = upload(client, team, "mini", "mini.jsonl", jsonl(GOOD))
    assert "already has a dataset named" in again.content.decode()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"[1, 2]", "bad_type: row must be an object, got list"),
        ({"ground_truth": "2"}, "missing_prompt"),
        ({"prompt": "   ", "ground_truth": "2"}, "empty_prompt"),
        ({"prompt": "Q?"}, "missing_answer"),
        ({"prompt": "Q?", "ground_truth": ""}, "missing_answer: ground_truth is empty"),
        ({"prompt": "Q?", "ground_truth": True}, "bad_type: ground_truth must be a string"),
        ({"prompt": [{"role": "user"}], "ground_truth": "2"}, "bad_type: prompt[0] needs both role and content"),
        ({"prompt": "Q?", "ground_truth": "2", "ability": "poetry"}, "bad_ability"),
        ({"prompt": "Q?", "ground_truth": "2", "extra_info": [1]}, "bad_type: extra_info must be an object"),
        ({"prompt": 5, "ground_truth": "2"}, "bad_type: prompt must be a string or a list of messages"),
    ],
)
def test_each_bad_line_is_refused_with_its_number_and_reason(team_client, line, reason):
    client, team = team_client
    response = upload(client, team, "bad", "bad.jsonl", jsonl(GOOD, b"", line, GOOD))
    page = response.content.decode()
    assert response.status_code == 200 and not DatasetSource.objects.filter(name="bad").exists()
    assert "1 bad line(s); nothing was registered" in page
    assert f"line 3: {reason}" in page.replace("&#x27;", "'")


def test_parquet_rows_are_checked_and_a_broken_file_is_named(team_client):
    client, team = team_client
    buffer = io.BytesIO()
    rows = [{"prompt": "Q?", "ground_truth": "1"}, {"prompt": "Q?", "ground_truth": None}]
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    page = upload(client, team, "pq", "set.parquet", buffer.getvalue()).content.decode()
    assert "row 2: missing_answer" in page
    assert "not a readable Parquet file" in upload(client, team, "pq", "set.parquet", b"garbage").content.decode()
    assert "upload a .jsonl or a .parquet file" in upload(client, team, "pq", "set.csv", b"a,b").content.decode()
    assert "the file holds no problems" in upload(client, team, "pq", "e.jsonl", b"\n\n").content.decode()


def test_only_write_roles_see_the_team(team_client, make_user, client):
    _, team = team_client
    viewer = make_user("viewer")
    Membership.objects.create(team=team, user=viewer, role=Membership.Role.VIEWER)
    client.force_login(viewer)
    response = upload(client, team, "v", "v.jsonl", jsonl(GOOD))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not DatasetSource.objects.exists()
