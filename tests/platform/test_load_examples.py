"""load_examples: the example specs become experiments of the Demo project, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

from experiments.models import Experiment, Project, Team


def write_spec(folder: Path, filename: str, spec: dict) -> Path:
    path = folder / filename
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def load(folder: Path) -> str:
    from io import StringIO

    out = StringIO()
    call_command("load_examples", "--dir", str(folder), stdout=out)
    return out.getvalue()


def test_loading_twice_changes_nothing_and_an_edit_updates(db, tmp_path, spec_data):
    write_spec(tmp_path, "tiny.yaml", spec_data)
    write_spec(tmp_path, "tiny-long.yaml", spec_data | {"name": "tiny-long", "seed": 3})

    assert load(tmp_path).count("created experiment") == 2
    ids = dict(Experiment.objects.values_list("name", "id"))
    assert load(tmp_path).count("unchanged experiment") == 2
    assert dict(Experiment.objects.values_list("name", "id")) == ids
    assert Team.objects.filter(name="Demo").count() == 1 and Project.objects.filter(slug="demo").count() == 1

    write_spec(tmp_path, "tiny.yaml", spec_data | {"seed": 11})
    output = load(tmp_path)
    assert "updated experiment 'tiny'" in output and "unchanged experiment 'tiny-long'" in output
    assert Experiment.objects.get(name="tiny").spec["seed"] == 11
    assert Experiment.objects.count() == 2
    assert set(Experiment.objects.get(name="tiny-long").tags) == {"example"}


def test_an_invalid_example_stops_the_load_with_its_field_paths(db, tmp_path, spec_data):
    write_spec(tmp_path, "good.yaml", spec_data)
    bad = spec_data | {"name": "bad", "stages": [spec_data["stages"][0] | {"mini_batch": 3}]}
    write_spec(tmp_path, "bad.yaml", bad)
    with pytest.raises(
        CommandError, match=r"bad\.yaml is not a valid run spec:\n  stages\[0\]\.rollout_batch"
    ):
        load(tmp_path)
    assert not Experiment.objects.exists()  # all or nothing


def test_two_examples_with_one_name_are_refused(db, tmp_path, spec_data):
    write_spec(tmp_path, "a.yaml", spec_data)
    write_spec(tmp_path, "b.yaml", spec_data)
    with pytest.raises(CommandError, match="both name their spec 'tiny'"):
        load(tmp_path)


def test_the_shipped_examples_load(db):
    files = sorted(Path(settings.OR1_EXAMPLES_DIR).glob("*.yaml"))
    assert files, f"no examples in {settings.OR1_EXAMPLES_DIR}"
    load(Path(settings.OR1_EXAMPLES_DIR))
    names = {yaml.safe_load(f.read_text())["name"] for f in files}
    assert set(Experiment.objects.filter(project__slug="demo").values_list("name", flat=True)) == names
    assert all(e.parsed_spec is not None for e in Experiment.objects.all())
