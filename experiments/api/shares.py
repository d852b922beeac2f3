"""Shares (read-only grants of a run, a checkpoint or a comparison view) and the audit log.

``GET /shares/`` lists the shares you manage (admins: all of their teams'; members: their own) and those
made to your teams (``direction=made|received``). Creating one names the audience: another team by its slug,
or ``link: true`` for a signed read-only link (``link_url``, shown to those who manage the share). Revoking
ends it at once. The audit log lists who launched, cancelled, shared or revoked what, for a team's admins.
"""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from experiments import access, sharing
from experiments.api.base import ApiViewSet, UsernameField
from experiments.api.filters import Filter
from experiments.models import AuditEntry, Share, Team


class ShareSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id", read_only=True, help_text="Whose results these are.")
    shared_with = serializers.SlugRelatedField(
        slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True,
        help_text="The slug of the team to share with (or set link).",
    )
    link = serializers.BooleanField(default=False, write_only=True, help_text="Create a read-only link instead.")
    runs = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, write_only=True, max_length=200,
        help_text="For a view: the runs in it.",
    )
    view_runs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    view_query = serializers.DictField(required=False, help_text="For a view: the dashboard's query parameters.")
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    created_by = UsernameField()
    state = serializers.CharField(read_only=True, help_text="active, expired or revoked")
    link_url = serializers.SerializerMethodField(help_text="The read-only link (link shares, for their managers).")
    direction = serializers.SerializerMethodField(help_text="made: by your team; received: shared with it.")

    class Meta:
        model = Share
        fields = [
            "id", "kind", "title", "team", "run", "checkpoint", "runs", "view_runs", "view_query", "shared_with",
            "link", "expires_at", "revoked_at", "state", "created_by", "created_at", "link_url", "direction",
        ]
        read_only_fields = ["revoked_at", "created_at"]
        extra_kwargs = {"run": {"required": False}, "checkpoint": {"required": False}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["run"].queryset = access.readable_runs(request.user)
            self.fields["checkpoint"].queryset = access.readable_checkpoints(request.user)

    def validate(self, attrs):
        kind = attrs["kind"]
        needed = {Share.Kind.RUN: "run", Share.Kind.CHECKPOINT: "checkpoint", Share.Kind.VIEW: "runs"}[kind]
        problems = {}
        if not attrs.get(needed):
            problems[needed] = f"a {kind} share needs {needed}"
        for other in {"run", "checkpoint", "runs"} - {needed}:
            if attrs.get(other):
                problems[other] = f"is not part of a {kind} share"
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def get_link_url(self, share: Share) -> str | None:
        request = self.context.get("request")
        if not share.is_link or request is None or share.team_id not in self.context.get("managed_teams", ()):
            return None
        return request.build_absolute_uri(reverse("shared-link", args=[share.link_token]))

    def get_direction(self, share: Share) -> str:
        return "received" if share.team_id not in self.context.get("team_ids", ()) else "made"


class ShareViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet):
    serializer_class = ShareSerializer
    filters = (
        Filter("direction", lambda qs, d, request: qs.filter(_made(request.user)) if d == "made" else
               qs.exclude(_made(request.user)), kind=str, choices=("made", "received"),
               help="made: shares of your teams' results; received: shares to your teams."),
        Filter("kind", "kind", kind=str, choices=tuple(Share.Kind.values)),
    )
    ordering_fields = ("created_at", "expires_at")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Share.objects.none()
        user = self.request.user
        made = sharing.manageable_shares(user).values("pk")
        received = access.received_shares(user).values("pk")
        return (
            Share.objects.filter(Q(pk__in=made) | Q(pk__in=received))
            .select_related("shared_with", "created_by")
            .prefetch_related("view_runs")
        )

    def get_serializer_context(self):
        user = self.request.user
        teams = access.team_ids(user)
        return super().get_serializer_context() | {
            "team_ids": set(teams),
            "managed_teams": {t for t in teams if access.can_write(t, user)},
        }

    def create(self, request, *args, **kwargs):
        """Share a run, a checkpoint or a view with another team, or by a signed read-only link."""
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        audience = {"team": data.get("shared_with"), "link": data["link"], "expires_at": data.get("expires_at")}
        if data["kind"] == Share.Kind.RUN:
            share = sharing.share_run(data["run"], request.user, **audience)
        elif data["kind"] == Share.Kind.CHECKPOINT:
            share = sharing.share_checkpoint(data["checkpoint"], request.user, **audience)
        else:
            readable = access.readable_runs(request.user).filter(pk__in=data["runs"])
            runs = list(readable.select_related("experiment__project__team"))
            missing = sorted(set(data["runs"]) - {r.pk for r in runs})
            if missing:
                raise serializers.ValidationError({"runs": f"no run {missing[0]}"})
            share = sharing.share_view(
                runs, request.user, title=data.get("title", ""), query=data.get("view_query", {}), **audience
            )
        return Response(self.get_serializer(share).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ShareSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """End the share now: the team (or the link) loses access with the next request."""
        share = sharing.revoke_share(self.get_object(), request.user)
        return Response(self.get_serializer(share).data)


def _made(user) -> Q:
    return Q(team_id__in=access.team_ids(user))


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "team", "actor", "action", "target_type", "target_id", "target_label", "detail"]
        read_only_fields = fields


class AuditViewSet(mixins.ListModelMixin, ApiViewSet):
    """Who launched, cancelled, shared or revoked what, and when: the teams you are an admin or owner of."""

    serializer_class = AuditEntrySerializer
    filters = (
        Filter("team", "team_id", help="One team's entries."),
        Filter("action", "action", kind=str, many=True, choices=tuple(AuditEntry.Action.values)),
        Filter("actor", "actor_name", kind=str, help="A username."),
    )
    ordering_fields = ("at",)

    def get_queryset(self):
        user = self.request.user
        return AuditEntry.objects.filter(team_id__in=[t for t in access.team_ids(user) if access.is_admin(t, user)])
