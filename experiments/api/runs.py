"""Runs: list and filter them, launch one (create), cancel or resume one, and read its events.

Creating a run launches it (``actions.launch_run``: the spec is validated, frozen and handed to a worker once
the transaction commits). Cancelling and resuming follow the roles: a member cancels and resumes their own
runs, an admin any run of the team. Resuming (``actions.resume_run``) continues a failed or cancelled run from
its newest checkpoint; any other run answers 409 saying why. A run another team shared with you reads like
your own (``access`` = ``shared``) but cannot be changed (403).
"""

from __future__ import annotations

import math

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from experiments import access, actions
from experiments.api.base import ApiViewSet, UsernameField
from experiments.api.errors import SpecInvalid
from experiments.api.experiments import TAG_HELP, with_tag
from experiments.api.filters import Filter, apply, parameters
from experiments.models import Experiment, Run, RunEvent, RunStatus, StageRecord
from experiments.models.runs import TERMINAL_STATUSES
from experiments.runstats import with_last_reward_and_entropy
from or1_train.spec import SpecError


class FiniteFloatField(serializers.FloatField):
    """A float that JSON can carry: NaN and +-inf (a diverged loss) read as null."""

    def to_representation(self, value):
        value = super().to_representation(value)
        return value if math.isfinite(value) else None


class StageSerializer(serializers.ModelSerializer):
    class Meta:
        model = StageRecord
        fields = ["index", "name", "max_response_tokens", "start_step", "end_step", "started_at", "ended_at"]


class RunSerializer(serializers.ModelSerializer):
    experiment_name = serializers.CharField(source="experiment.name", read_only=True)
    project = serializers.IntegerField(source="experiment.project_id", read_only=True)
    team = serializers.IntegerField(source="experiment.project.team_id", read_only=True)
    tags = serializers.ListField(source="experiment.tags", child=serializers.CharField(), read_only=True)
    created_by = UsernameField()
    progress_percent = serializers.FloatField(read_only=True)
    last_reward = FiniteFloatField(read_only=True, allow_null=True, help_text="Newest critic/score/mean.")
    last_entropy = FiniteFloatField(read_only=True, allow_null=True, help_text="Newest actor/entropy_loss.")
    access = serializers.SerializerMethodField(help_text="team: a run of your team; shared: shared with it.")

    class Meta:
        model = Run
        fields = [
            "id", "experiment", "experiment_name", "project", "team", "sweep", "tags", "status", "status_reason",
            "launcher", "created_by", "created_at", "started_at", "finished_at", "current_stage", "current_step",
            "total_steps", "progress_percent", "last_reward", "last_entropy", "access",
        ]
        read_only_fields = fields

    def get_access(self, run: Run) -> str:
        return "team" if run.experiment.project.team_id in self.context.get("team_ids", ()) else "shared"


class RunDetailSerializer(RunSerializer):
    stages = StageSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields, "spec_as_launched", "environment", "stages", "exit_code", "restarts",
            "host", "external_job_id", "run_dir",
        ]
        read_only_fields = fields


class LaunchSerializer(serializers.Serializer):
    experiment = serializers.PrimaryKeyRelatedField(queryset=Experiment.objects.none())
    spec = serializers.JSONField(
        required=False, help_text="Launch this spec instead of the experiment's (e.g. an edited copy)."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["experiment"].queryset = Experiment.objects.visible_to(request.user)


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["id", "kind", "message", "data", "at"]


#: ``GET /runs/<id>/events/?kind=alert``: the alerts raised and cleared (``data``: alert, state)
EVENT_FILTERS = (
    Filter("kind", "kind", kind=str, many=True, choices=tuple(RunEvent.Kind.values), help="Any of these kinds."),
)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Runs of your teams and runs shared with them. Create = launch; cancel; resume; events."""

    filters = (
        Filter("status", "status", kind=str, many=True, choices=tuple(RunStatus.values), help="Any of these."),
        Filter("active", lambda qs, on, _: qs.active() if on else qs.filter(status__in=TERMINAL_STATUSES),
               kind=bool, help="Only runs that have not ended (true) or only ended ones (false)."),
        Filter("experiment", "experiment_id", help="Runs of this experiment."),
        Filter("project", "experiment__project_id", help="Runs of this project."),
        Filter("team", "experiment__project__team_id", help="Runs of this team."),
        Filter("sweep", "sweep_id", help="Runs of this sweep."),
        Filter("tag", lambda qs, tag, _: with_tag(qs, tag, "experiment__"), kind=str, help=TAG_HELP),
        Filter("q", "experiment__name__icontains", kind=str, help="Text in the experiment's name."),
    )
    ordering_fields = ("created_at", "started_at", "finished_at", "status", "current_step", "id")
    #: newest first; ids grow with creation, and walking the primary key backwards finds the first page of
    #: 10,000 runs without sorting them all (``bench/api.py``)
    ordering = ("-id",)
    conflict_actions = ("cancel", "resume")

    def get_queryset(self):
        runs = access.readable_runs(self.request.user).select_related("experiment__project", "created_by")
        if self.action == "retrieve":
            return with_last_reward_and_entropy(runs.prefetch_related("stages"))
        return runs

    def list(self, request, *args, **kwargs):
        """The page first, then the newest reward and entropy of its runs only: computed in the listing
        query, they would be computed for every run the page skips too (page 150 skips 7,450)."""
        # the frozen specs are kilobytes a row: sorting 10,000 of them to find a page would dominate
        runs = self.get_queryset().defer(
            "spec_as_launched", "environment", "experiment__spec", "experiment__description"
        )
        page = self.paginate_queryset(self.filter_queryset(runs))
        latest = {
            run.pk: run
            for run in with_last_reward_and_entropy(Run.objects.filter(pk__in=[r.pk for r in page])).only("pk")
        }
        for run in page:
            run.last_reward, run.last_entropy = latest[run.pk].last_reward, latest[run.pk].last_entropy
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def get_serializer_class(self):
        return RunDetailSerializer if self.action in ("retrieve", "cancel", "resume", "create") else RunSerializer

    def get_serializer_context(self):
        return super().get_serializer_context() | {"team_ids": set(access.team_ids(self.request.user))}

    @extend_schema(request=LaunchSerializer, responses={201: RunDetailSerializer})
    def create(self, request, *args, **kwargs):
        """Launch a run of an experiment (members of its team)."""
        body = LaunchSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        try:
            data = body.validated_data
            run = actions.launch_run(data["experiment"], request.user, spec=data.get("spec"))
        except SpecError as exc:
            raise SpecInvalid(exc, prefix="spec") from None
        return Response(self._fresh(run), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: RunDetailSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the run: at once when still queued, else SIGTERM (checkpoint and stop) on its host."""
        run = self.get_object()
        if not access.can_manage(run.experiment.project.team_id, request.user, run.created_by_id):
            raise PermissionDenied("members cancel only their own runs; admins cancel any run of the team")
        actions.cancel_run(run, request.user)
        return Response(self._fresh(run))

    @extend_schema(request=None, responses={200: RunDetailSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume a failed or cancelled run from its newest checkpoint, with ``--resume`` where it ran; 409
        (saying why) when the run has not ended, succeeded, or has no checkpoint."""
        run = self.get_object()
        actions.resume_run(run, request.user)
        return Response(self._fresh(run))

    @extend_schema(responses={200: RunEventSerializer(many=True)}, filters=False, parameters=parameters(EVENT_FILTERS))
    @action(detail=True, methods=["get"], serializer_class=RunEventSerializer, filter_backends=[])
    def events(self, request, pk=None):
        """The run's events (status changes, stage boundaries, trainer messages, health alerts), oldest first."""
        run = self.get_object()
        page = self.paginate_queryset(apply(EVENT_FILTERS, request, run.events.order_by("at", "id")))
        return self.get_paginated_response(RunEventSerializer(page, many=True).data)

    def _fresh(self, run: Run) -> dict:
        run = with_last_reward_and_entropy(Run.objects.filter(pk=run.pk).select_related("experiment__project")).get()
        return RunDetailSerializer(run, context=self.get_serializer_context()).data
