"""Upload a custom eval set (JSONL or Parquet) and register it as a dataset source of a team.

Every row is checked with the trainer's own schema (`or1_train.data.schema.parse_row`), so a file accepted
here is one the trainer reads without skipping anything. A file with any bad row is refused as a whole, and
the page lists each bad line with its number and reason: an eval set that silently lost problems would
give scores that cannot be compared with anyone's.

The file is stored under ``OR1_DATASETS_DIR`` (default ``<data dir>/datasets``), which the workers read, and
registered once as a ``DatasetSource``; every run and evaluation of the team can then name it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from experiments.models import DatasetSource, Membership, Team
from or1_train.data.schema import MalformedRow, parse_row

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_ERRORS_SHOWN = 100


def check_rows(rows, name: str, unit: str) -> tuple[int, list[str]]:
    """(number of good rows, one message per bad row: "<unit> N: reason"); N counts from 1 as editors do."""
    good, errors = 0, []
    for number, row in rows:
        if isinstance(row, str):  # a line that never became a row: the reason is already spelled out
            errors.append(f"{unit} {number}: {row}")
            continue
        try:
            parse_row(row, name, number)
            good += 1
        except MalformedRow as e:
            errors.append(f"{unit} {number}: {e}")
    return good, errors


def _jsonl_rows(data: bytes):
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, "not valid UTF-8"
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            yield number, f"not JSON ({e.msg} at column {e.colno})"


def _parquet_rows(data: bytes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        raise forms.ValidationError(f"not a readable Parquet file ({e})") from None
    return enumerate(table.to_pylist(), start=1)


def check_file(filename: str, data: bytes, name: str) -> tuple[str, int]:
    """The format ("jsonl" or "parquet") and row count of a valid eval set; ValidationError listing bad rows."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        kind, unit, rows = "jsonl", "line", _jsonl_rows(data)
    elif suffix == ".parquet":
        kind, unit, rows = "parquet", "row", _parquet_rows(data)
    else:
        raise forms.ValidationError(f"{filename}: upload a .jsonl or a .parquet file")
    good, errors = check_rows(rows, name, unit)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = [f"... and {len(errors) - len(shown)} more bad {unit}s"] if len(errors) > len(shown) else []
        raise forms.ValidationError(
            [f"{len(errors)} bad {unit}(s); nothing was registered. Fix them and upload again."] + shown + more
        )
    if good == 0:
        raise forms.ValidationError(f"{filename}: the file holds no problems")
    return kind, good


class DatasetUploadForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none())
    name = forms.SlugField(max_length=100, help_text="How runs and evaluations name this set, e.g. aime-mini.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    file = forms.FileField(help_text="JSONL (one problem per line) or Parquet, in OR1's layout or "
                                     '{"prompt": ..., "ground_truth": ...}.')

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.filter(
            memberships__user=user, memberships__role__in=Membership.WRITE_ROLES
        ).distinct()

    def clean(self):
        data = super().clean()
        team, name, upload = data.get("team"), data.get("name"), data.get("file")
        if team and name and DatasetSource.objects.filter(team=team, name=name).exists():
            self.add_error("name", f"{team} already has a dataset named {name!r}.")
        if upload and name:
            if upload.size > MAX_UPLOAD_BYTES:
                self.add_error("file", f"the file is over {MAX_UPLOAD_BYTES // 2**20} MiB")
                return data
            content = upload.read()
            try:
                data["format"], data["num_prompts"] = check_file(upload.name, content, name)
                data["content"] = content
            except forms.ValidationError as e:
                self.add_error("file", e)
        return data


@login_required
def dataset_upload(request: HttpRequest) -> HttpResponse:
    form = DatasetUploadForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = data["team"]
        folder = Path(settings.OR1_DATASETS_DIR) / str(team.pk)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{data['name']}.{data['format']}"
        path.write_bytes(data["content"])
        source = DatasetSource.objects.create(
            team=team, name=data["name"], path=str(path), format=data["format"],
            num_prompts=data["num_prompts"], description=data["description"],
        )
        messages.success(request, f"Registered {source.name} ({source.num_prompts} problems) for {team}.")
        return redirect("dataset-upload")
    sources = DatasetSource.objects.filter(team__memberships__user=request.user).select_related("team").distinct()
    return render(request, "experiments/dataset_upload.html", {"form": form, "sources": sources})
