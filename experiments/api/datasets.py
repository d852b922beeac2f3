"""Dataset sources and weighted mixes of a team; members create and change them, viewers read."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from rest_framework import mixins, serializers

from experiments import access
from experiments.api.base import ApiViewSet, DestroyMixin
from experiments.api.filters import Filter
from experiments.models import DatasetMix, DatasetMixEntry, DatasetSource, Team


class _TeamScoped(serializers.ModelSerializer):
    """Offers only the user's own teams for ``team`` (another team's id reads as 'does not exist')."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and "team" in self.fields and not self.fields["team"].read_only:
            self.fields["team"].queryset = Team.objects.filter(pk__in=access.team_ids(request.user))


class DatasetSourceSerializer(_TeamScoped):
    class Meta:
        model = DatasetSource
        fields = ["id", "team", "name", "path", "format", "ability", "num_prompts", "description", "created_at"]
        read_only_fields = ["created_at"]


def _require_write(team: Team, user) -> None:
    if not access.can_write(team, user):
        raise PermissionDenied(f"{user} may not change {team}'s datasets (viewers only read)")


class _TeamWrites:
    """Create, change and delete need a write role in the object's team (and the team may not change)."""

    def perform_create(self, serializer):
        _require_write(serializer.validated_data["team"], self.request.user)
        serializer.save()

    def perform_update(self, serializer):
        _require_write(serializer.instance.team, self.request.user)
        if serializer.validated_data.get("team", serializer.instance.team) != serializer.instance.team:
            raise serializers.ValidationError({"team": "a dataset cannot move to another team"})
        serializer.save()

    def perform_destroy(self, instance):
        _require_write(instance.team, self.request.user)
        super().perform_destroy(instance)


class DatasetSourceViewSet(
    _TeamWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    DestroyMixin,
    ApiViewSet,
):
    """Datasets a team registered (files or directories the workers can read)."""

    serializer_class = DatasetSourceSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filters = (
        Filter("team", "team_id", help="Only this team's datasets."),
        Filter("ability", "ability", kind=str, choices=tuple(DatasetSource.Ability.values)),
    )
    ordering_fields = ("name", "created_at")

    def get_queryset(self):
        return DatasetSource.objects.visible_to(self.request.user).select_related("team")


class MixEntrySerializer(serializers.ModelSerializer):
    weight = serializers.FloatField(min_value=1e-9, max_value=1e9)

    class Meta:
        model = DatasetMixEntry
        fields = ["source", "weight"]


class DatasetMixSerializer(_TeamScoped):
    entries = MixEntrySerializer(many=True)
    spec_data = serializers.SerializerMethodField(help_text="The run spec's data section for this mix.")

    class Meta:
        model = DatasetMix
        fields = ["id", "team", "name", "description", "entries", "spec_data", "created_at"]
        read_only_fields = ["created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            sources = DatasetSource.objects.visible_to(request.user)
            self.fields["entries"].child.fields["source"].queryset = sources

    def get_spec_data(self, mix: DatasetMix) -> dict:
        return mix.as_spec_data()

    def validate(self, attrs):
        entries = attrs.get("entries", [])
        if not entries:
            raise serializers.ValidationError({"entries": "a mix needs at least one dataset"})
        team = attrs.get("team") or getattr(self.instance, "team", None)
        problems = {}
        seen = set()
        for index, entry in enumerate(entries):
            if entry["source"].team_id != team.pk:
                problems[f"entries[{index}].source"] = "a mix can only use its own team's datasets"
            elif entry["source"].pk in seen:
                problems[f"entries[{index}].source"] = "is already in the mix"
            seen.add(entry["source"].pk)
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    @transaction.atomic
    def create(self, validated_data):
        entries = validated_data.pop("entries")
        mix = DatasetMix.objects.create(**validated_data)
        DatasetMixEntry.objects.bulk_create(DatasetMixEntry(mix=mix, **entry) for entry in entries)
        return mix


class DatasetMixViewSet(
    _TeamWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    DestroyMixin,
    ApiViewSet,
):
    """Named weighted mixes of a team's datasets; ``spec_data`` is ready to paste into a run spec."""

    serializer_class = DatasetMixSerializer
    filters = (Filter("team", "team_id", help="Only this team's mixes."),)
    ordering_fields = ("name", "created_at")

    def get_queryset(self):
        return DatasetMix.objects.visible_to(self.request.user).select_related("team").prefetch_related("entries")
