"""Django admin for every model: the operator's view of the raw rows.

Specs and other JSON show indented; an experiment's spec is validated with the trainer's contract on save, and
run status is read-only here because it may only change through ``Run.transition_to``.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db import models
from django.utils.html import format_html

from experiments.models import (
    Checkpoint,
    DatasetMix,
    DatasetMixEntry,
    DatasetSource,
    EvaluationResult,
    Experiment,
    Membership,
    MetricPoint,
    Project,
    Run,
    RunEvent,
    StageRecord,
    Sweep,
    Team,
)
from or1_train.spec import validate_spec


class PrettyJSONField(forms.JSONField):
    """A JSON form field that shows its value indented, so a spec is readable in a text area."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


def pretty_json(value) -> str:
    return format_html(
        "<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False)
    )


class JSONAdmin(admin.ModelAdmin):
    formfield_overrides = {
        models.JSONField: {
            "form_class": PrettyJSONField,
            "widget": forms.Textarea(attrs={"rows": 20, "cols": 100}),
        }
    }


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "slug", "created_at"]
    list_filter = ["team"]
    search_fields = ["name", "slug", "team__name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(DatasetSource)
class DatasetSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "ability", "format", "num_prompts", "path"]
    list_filter = ["team", "ability", "format"]
    search_fields = ["name", "path", "description"]


class DatasetMixEntryInline(admin.TabularInline):
    model = DatasetMixEntry
    extra = 1


@admin.register(DatasetMix)
class DatasetMixAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "created_at"]
    list_filter = ["team"]
    search_fields = ["name", "description"]
    inlines = [DatasetMixEntryInline]


@admin.register(DatasetMixEntry)
class DatasetMixEntryAdmin(admin.ModelAdmin):
    list_display = ["mix", "source", "weight"]
    list_filter = ["mix__team"]
    search_fields = ["mix__name", "source__name"]


class ExperimentAdminForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = "__all__"

    def clean_spec(self):
        spec = self.cleaned_data["spec"]
        problems = validate_spec(spec)
        if problems:
            raise forms.ValidationError([str(p) for p in problems])
        return spec


@admin.register(Experiment)
class ExperimentAdmin(JSONAdmin):
    form = ExperimentAdminForm
    list_display = ["name", "project", "created_by", "created_at", "parent"]
    list_filter = ["project__team", "project"]
    search_fields = ["name", "description", "project__name"]
    raw_id_fields = ["parent"]
    readonly_fields = ["created_at", "updated_at"]


class RunEventInline(admin.TabularInline):
    model = RunEvent
    extra = 0
    fields = ["at", "kind", "message"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


class StageRecordInline(admin.TabularInline):
    model = StageRecord
    extra = 0
    readonly_fields = [
        "index",
        "name",
        "max_response_tokens",
        "start_step",
        "end_step",
        "started_at",
        "ended_at",
    ]
    can_delete = False


@admin.register(Run)
class RunAdmin(JSONAdmin):
    list_display = [
        "id",
        "experiment",
        "status",
        "launcher",
        "current_step",
        "total_steps",
        "created_at",
        "host",
    ]
    list_filter = ["status", "launcher", "experiment__project__team"]
    search_fields = ["id", "experiment__name", "external_job_id", "host"]
    list_select_related = ["experiment"]
    raw_id_fields = ["experiment", "sweep"]
    readonly_fields = [
        "status",
        "status_reason",
        "created_at",
        "started_at",
        "finished_at",
        "spec_as_launched_pretty",
        "ingest_token_hash",
    ]
    exclude = ["spec_as_launched"]
    inlines = [StageRecordInline, RunEventInline]

    @admin.display(description="spec as launched")
    def spec_as_launched_pretty(self, run: Run) -> str:
        return pretty_json(run.spec_as_launched)


@admin.register(RunEvent)
class RunEventAdmin(JSONAdmin):
    list_display = ["run", "kind", "message", "at"]
    list_filter = ["kind"]
    search_fields = ["message", "run__id"]
    raw_id_fields = ["run"]


@admin.register(StageRecord)
class StageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "run",
        "index",
        "name",
        "max_response_tokens",
        "start_step",
        "end_step",
        "started_at",
        "ended_at",
    ]
    search_fields = ["name", "run__id"]
    raw_id_fields = ["run"]


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ["run", "name", "step", "value", "wall_time"]
    search_fields = ["name", "run__id"]
    raw_id_fields = ["run"]
    show_full_result_count = False  # the table is large; counting it on every page is slow


@admin.register(Checkpoint)
class CheckpointAdmin(JSONAdmin):
    list_display = ["run", "step", "stage", "size_bytes", "created_at", "path"]
    list_filter = ["stage"]
    search_fields = ["path", "run__id"]
    raw_id_fields = ["run"]


@admin.register(EvaluationResult)
class EvaluationResultAdmin(admin.ModelAdmin):
    list_display = [
        "benchmark",
        "run",
        "checkpoint",
        "step",
        "k",
        "num_samples",
        "avg_at_k",
        "pass_at_k",
        "temperature",
    ]
    list_filter = ["benchmark", "k"]
    search_fields = ["benchmark", "run__id"]
    raw_id_fields = ["run", "checkpoint"]


@admin.register(Sweep)
class SweepAdmin(JSONAdmin):
    list_display = ["name", "project", "base_experiment", "status", "concurrency", "created_at"]
    list_filter = ["status", "project__team"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["base_experiment"]
