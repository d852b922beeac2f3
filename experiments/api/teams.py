"""Teams, their members and their projects.

Every member reads the team, its member list and its projects; admins and owners create projects; only
owners add members, change roles and remove members (a team always keeps at least one owner).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.response import Response

from experiments import access, actions
from experiments.api.base import ApiViewSet, DestroyMixin
from experiments.api.filters import Filter
from experiments.models import Membership, Project, Team
from experiments.models.audit import AuditEntry, record


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, help_text="Your role in the team.")

    class Meta:
        model = Team
        fields = ["id", "name", "slug", "description", "role", "created_at"]


class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """The teams you belong to, with your role in each."""

    serializer_class = TeamSerializer
    ordering_fields = ("name", "created_at")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Team.objects.none()
        mine = Membership.objects.filter(team=OuterRef("pk"), user=self.request.user).values("role")[:1]
        return Team.objects.filter(pk__in=access.team_ids(self.request.user)).annotate(role=Subquery(mine))


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "created_at"]
        read_only_fields = fields


class NewMemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="The user to add.")
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


TEAM_PK = OpenApiParameter("team_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The team's id.")
USER_ID = OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The member's id.")


@extend_schema_view(
    list=extend_schema(parameters=[TEAM_PK]),
    create=extend_schema(parameters=[TEAM_PK], request=NewMemberSerializer, responses={201: MemberSerializer}),
    retrieve=extend_schema(parameters=[TEAM_PK, USER_ID]),
    partial_update=extend_schema(parameters=[TEAM_PK, USER_ID], request=MemberRoleSerializer),
    destroy=extend_schema(parameters=[TEAM_PK, USER_ID]),
)
class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    DestroyMixin,
    ApiViewSet,
):
    """A team's members. Owners add members (by username), change roles and remove members."""

    serializer_class = MemberSerializer
    lookup_field = "user_id"
    lookup_value_regex = "[0-9]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    ordering_fields = ("created_at",)

    def team(self) -> Team:
        teams = Team.objects.filter(pk__in=access.team_ids(self.request.user))
        return get_object_or_404(teams, pk=self.kwargs["team_pk"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return self.team().memberships.select_related("user").order_by("user__username")

    def _require_owner(self, team: Team) -> None:
        if not access.is_owner(team, self.request.user):
            raise PermissionDenied("only the team's owners manage its members")

    def _audit(self, team: Team, action: str, membership: Membership) -> None:
        record(
            team=team, actor=self.request.user, action=action, target_type="user",
            target_id=membership.user_id, target_label=membership.user.get_username(), role=membership.role,
        )

    def create(self, request, *args, **kwargs):
        team = self.team()
        self._require_owner(team)
        body = NewMemberSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = get_user_model().objects.filter(username=body.validated_data["username"]).first()
        if user is None:
            raise ValidationError({"username": "there is no user with this username"})
        if team.memberships.filter(user=user).exists():
            raise ValidationError({"username": f"{user} is already a member; change the role instead"})
        membership = actions.add_member(team, user, body.validated_data["role"])
        self._audit(team, AuditEntry.Action.MEMBER_ADD, membership)
        return Response(MemberSerializer(membership).data, status=201)

    @transaction.atomic
    def partial_update(self, request, *args, **kwargs):
        team = self.team()
        self._require_owner(team)
        membership = self.get_object()
        body = MemberRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        role = body.validated_data["role"]
        if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
            self._keep_an_owner(team)
        membership.role = role
        membership.save(update_fields=["role"])
        self._audit(team, AuditEntry.Action.MEMBER_ROLE, membership)
        return Response(MemberSerializer(membership).data)

    @transaction.atomic
    def perform_destroy(self, instance: Membership) -> None:
        team = self.team()
        self._require_owner(team)
        if instance.role == Membership.Role.OWNER:
            self._keep_an_owner(team)
        self._audit(team, AuditEntry.Action.MEMBER_REMOVE, instance)
        super().perform_destroy(instance)

    def _keep_an_owner(self, team: Team) -> None:
        owners = team.memberships.select_for_update().filter(role=Membership.Role.OWNER).count()
        if owners <= 1:
            raise ValidationError({"role": "a team needs at least one owner; make someone else owner first"})


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "team", "name", "slug", "description", "created_at"]
        read_only_fields = ["created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and "team" in self.fields:
            self.fields["team"].queryset = Team.objects.filter(pk__in=access.team_ids(request.user))


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet):
    """Projects of your teams; a team's admins and owners create them."""

    serializer_class = ProjectSerializer
    filters = (Filter("team", "team_id", help="Only this team's projects."),)
    ordering_fields = ("name", "created_at")

    def get_queryset(self):
        return Project.objects.visible_to(self.request.user).select_related("team")

    def perform_create(self, serializer):
        if not access.is_admin(serializer.validated_data["team"], self.request.user):
            raise PermissionDenied("only the team's admins and owners create projects")
        serializer.save()

