"""Django admin for every model: the operator's view of the raw rows.

Specs and other JSON show indented; an experiment's spec is validated with the trainer's contract on save, and
run status is read-only here because it may only change through ``Run.transition_to``.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html

from experiments.models import (
    ApiToken,
    AuditEntry,
    Checkpoint,
    DatasetMix,
    DatasetMixEntry,
    DatasetSource,
    EvaluationResult,
    Experiment,
    Membership,
    MetricPoint,
    MetricTile,
    Project,
    RetentionPolicy,
    Run,
    RunAlert,
    RunEvent,
    SavedView,
    Share,
    SlurmCluster,
    SlurmJob,
    StageRecord,
    Sweep,
    SweepPoint,
    Team,
    TileState,
)
from experiments.secrets import SecretUnreadable
from or1_train.spec import validate_spec


class PrettyJSONField(forms.JSONField):
    """A JSON form field that shows its value indented, so a spec is readable in a text area."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


def pretty_json(value) -> str:
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


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


# ------------------------------------------------------------------------------------------ Slurm clusters


def _plain_http_urls(db_field, **kwargs):
    """slurmrestd usually speaks plain HTTP inside the cluster: a URL typed without a scheme means http."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "http")
    return db_field.formfield(**kwargs)


class SlurmClusterForm(forms.ModelForm):
    """The cluster's settings plus write-only credentials: a stored token or key is never sent back to the
    browser (the page says "set" or "not set"); typing a new one, or uploading a key file, replaces it."""

    new_token = forms.CharField(
        label="Replace the token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="A fixed JWT for the Slurm user ('scontrol token username=U lifespan=S' prints it). "
        "Leave empty to keep what is stored.",
    )
    new_jwt_key = forms.FileField(
        label="Replace the JWT key",
        required=False,
        help_text="Or upload the cluster's jwt_hs256.key (AuthAltParameters=jwt_key=...): short tokens are "
        "then minted per request. Whoever holds it can act as any Slurm user.",
    )

    class Meta:
        model = SlurmCluster
        fields = [
            "team", "name", "rest_url", "api_version", "user", "new_token", "new_jwt_key", "jwt_key_file",
            "token_lifespan_s", "partition", "account", "qos", "job_template", "trainer_command", "runs_dir",
            "ingest_url",
        ]  # fmt: skip
        widgets = {"job_template": forms.Textarea(attrs={"rows": 5, "cols": 90, "spellcheck": "false"})}
        formfield_callback = _plain_http_urls

    def clean(self):
        data = super().clean()
        given = [name for name in ("new_token", "new_jwt_key", "jwt_key_file") if data.get(name)]
        if len(given) > 1:
            raise forms.ValidationError("give one of a token, a key file upload or a key file path, not several")
        stored = self.instance.pk and (self.instance.token_encrypted or self.instance.jwt_key_encrypted)
        if not given and not stored:
            raise forms.ValidationError("the cluster needs credentials: a token, a key upload or a key file path")
        return data

    def save(self, commit=True):
        cluster = super().save(commit=False)
        if self.cleaned_data.get("new_token"):
            cluster.set_token(self.cleaned_data["new_token"])
        elif self.cleaned_data.get("new_jwt_key"):
            cluster.set_jwt_key(self.cleaned_data["new_jwt_key"].read())
        elif cluster.jwt_key_file:
            cluster.token_encrypted = cluster.jwt_key_encrypted = ""
        if commit:
            cluster.save()
        return cluster


@admin.register(SlurmCluster)
class SlurmClusterAdmin(admin.ModelAdmin):
    form = SlurmClusterForm
    formfield_overrides = {models.URLField: {"assume_scheme": "http"}}  # as _plain_http_urls
    list_display = ["name", "team", "rest_url", "api_version", "user", "credentials_status", "runs_dir"]
    list_filter = ["team", "api_version"]
    search_fields = ["name", "rest_url", "user"]
    readonly_fields = ["credentials_status"]
    actions = ["ping"]
    fieldsets = [
        (None, {"fields": ["team", "name", "rest_url", "api_version"]}),
        ("Credentials (write-only)", {"fields": [
            "user", "credentials_status", "new_token", "new_jwt_key", "jwt_key_file", "token_lifespan_s",
        ]}),
        ("Jobs", {"fields": [
            "partition", "account", "qos", "job_template", "trainer_command", "runs_dir", "ingest_url",
        ]}),
    ]  # fmt: skip

    @admin.display(description="credentials")
    def credentials_status(self, cluster: SlurmCluster) -> str:
        kinds = {"token": "token: set", "key": "JWT key: set", "key file": f"key file: {cluster.jwt_key_file}"}
        return kinds.get(cluster.credentials, "not set")

    @admin.action(description="Ping the selected clusters through slurmrestd")
    def ping(self, request, queryset) -> None:
        from workers.slurm import SlurmError

        for cluster in queryset:
            try:
                with cluster.client(timeout=5) as client:
                    answer = client.ping()
            except (SlurmError, SecretUnreadable, OSError, ValueError) as exc:
                self.message_user(request, f"{cluster}: {exc}", messages.ERROR)
                continue
            level = messages.SUCCESS if answer.ok else messages.WARNING
            state = "up" if answer.ok else "answers, but no slurmctld responds"
            release = f"Slurm {answer.slurm_release} via {answer.api_version}"
            self.message_user(request, f"{cluster}: {release}, {state}", level)


@admin.register(SlurmJob)
class SlurmJobAdmin(admin.ModelAdmin):
    list_display = ["job_id", "cluster_name", "run", "attempt", "state", "reason", "node_list", "exit_code"]
    list_filter = ["state", "cluster"]
    search_fields = ["job_id", "run__id", "node_list"]
    raw_id_fields = ["run", "cluster"]
    readonly_fields = ["last_seen_at", "term_sent_at", "kill_sent_at", "last_error"]


# ------------------------------------------------------------------- tokens, audit, sharing, alerts, views


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the platform's own actions: an edit here would falsify a record."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "scope", "hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    search_fields = ["name", "user__username", "hint"]
    exclude = ["token_hash"]  # the hash is no secret, but nobody needs to read it


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "team", "actor_name", "action", "target_type", "target_label"]
    list_filter = ["action", "team"]
    search_fields = ["actor_name", "target_label"]


@admin.register(Share)
class ShareAdmin(ReadOnlyAdmin):
    list_display = ["title", "kind", "team", "shared_with", "expires_at", "revoked_at", "created_by"]
    list_filter = ["kind", "team"]
    exclude = ["link_nonce"]  # the secret half of a link share


@admin.register(SweepPoint)
class SweepPointAdmin(JSONAdmin):
    list_display = ["sweep", "index", "configuration", "state", "run"]
    list_filter = ["state"]
    raw_id_fields = ["sweep", "run"]


@admin.register(RunAlert)
class RunAlertAdmin(JSONAdmin):
    list_display = ["run", "kind", "step", "raised_at", "cleared_at"]
    list_filter = ["kind"]
    raw_id_fields = ["run"]


@admin.register(SavedView)
class SavedViewAdmin(JSONAdmin):
    list_display = ["name", "team", "created_by", "updated_at"]
    list_filter = ["team"]


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ["project", "keep_last", "keep_best", "best_metric", "higher_is_better", "updated_at"]


@admin.register(MetricTile)
class MetricTileAdmin(ReadOnlyAdmin):
    """Pre-aggregated buckets kept exact by database triggers; shown for debugging the dashboards only."""

    list_display = ["run", "name", "level", "tile", "n", "min_v", "max_v"]
    raw_id_fields = ["run"]


@admin.register(TileState)
class TileStateAdmin(ReadOnlyAdmin):
    """Which chart series changed since their tiles were built (written by database triggers)."""


# Evaluation and difficulty jobs (experiments/jobs.py): written by the platform, read here.
from experiments.models import DifficultyJob, EvaluationJob  # noqa: E402


@admin.register(EvaluationJob)
class EvaluationJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "team", "model_path", "k", "samples", "status", "launcher", "created_by", "created_at",
                    "finished_at"]
    list_filter = ["status", "launcher", "team"]
    raw_id_fields = ["checkpoint"]


@admin.register(DifficultyJob)
class DifficultyJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "team", "source", "model_name", "n", "kept", "num_problems", "status", "launcher",
                    "created_at"]
    list_filter = ["status", "launcher", "team"]
    raw_id_fields = ["checkpoint", "source", "filtered_source"]
