"""The forms that start evaluation and difficulty jobs. They only collect values: ``experiments.jobs`` checks
them (with the trainer's spec rules) and ``apply_errors`` puts its field errors back on the form's fields."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from experiments.models import Checkpoint, DatasetSource, Membership, Run, SlurmCluster, Team
from experiments.models.jobs import ModelJob


def writable_teams(user):
    return Team.objects.filter(memberships__user=user, memberships__role__in=Membership.WRITE_ROLES).distinct()


class CheckpointChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Checkpoint) -> str:
        return f"{obj.run.experiment.name} · run #{obj.run_id} · step {obj.step}"


class ClusterChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: SlurmCluster) -> str:
        return f"{obj.name} ({obj.team})"


class _ModelFields(forms.Form):
    """Which model (a checkpoint of one of the user's teams, or an HF model path), and where the job runs."""

    checkpoint = CheckpointChoice(queryset=Checkpoint.objects.none(), required=False,
                                  help_text="A checkpoint of your team's runs …")
    model_path = forms.CharField(
        required=False, max_length=1000, label="… or an HF model path",
        help_text="A model directory the workers can read, e.g. /models/DeepSeek-R1-Distill-Qwen-7B.",
    )
    engine = forms.ChoiceField(choices=ModelJob.Engine.choices, required=False)
    dtype = forms.ChoiceField(choices=ModelJob.Dtype.choices, required=False)
    temperature = forms.FloatField(initial=1.0, min_value=0.01, max_value=2.0)
    launcher = forms.ChoiceField(choices=Run.Launcher.choices, initial=Run.Launcher.LOCAL, required=False,
                                 help_text="A worker host, or a Slurm cluster of the team (a batch job).")
    cluster = ClusterChoice(queryset=SlurmCluster.objects.none(), required=False, label="Slurm cluster",
                            help_text="For the Slurm launcher.")
    gpus = forms.IntegerField(required=False, min_value=0, max_value=64, label="GPUs (Slurm)",
                              help_text="On one node; default the spec's tensor-parallel size with vLLM, none with "
                                        "transformers.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        teams = writable_teams(user)
        self.fields["checkpoint"].queryset = (
            Checkpoint.objects.filter(run__experiment__project__team__in=teams)
            .select_related("run__experiment").order_by("-created_at", "-id")
        )
        self.fields["cluster"].queryset = SlurmCluster.objects.filter(team__in=teams).select_related("team")


def apply_errors(form: forms.Form, error: ValidationError) -> None:
    """Field errors from ``experiments.jobs`` on the fields they name (anything else on the form)."""
    for field, messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


class EvaluationJobForm(_ModelFields):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False,
                                  help_text="For a model path: the team whose eval sets and workers to use.")
    eval_sets = forms.ModelMultipleChoiceField(queryset=DatasetSource.objects.none(),
                                               widget=forms.CheckboxSelectMultiple, label="Eval sets")
    k = forms.IntegerField(initial=8, min_value=1, max_value=1024, label="k",
                           help_text="avg@k and pass@k (the paper: 32 on AIME, 4 on LiveCodeBench).")
    samples = forms.IntegerField(required=False, min_value=1, max_value=1024,
                                 help_text="Answers sampled per problem (n >= k); default k.")
    max_response_tokens = forms.IntegerField(required=False, min_value=1,
                                             help_text="Default: the run's last stage (32768 for a model path).")
    field_order = ["checkpoint", "model_path", "team", "eval_sets", "k", "samples", "temperature",
                   "max_response_tokens", "engine", "dtype", "launcher", "cluster", "gpus"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        teams = writable_teams(user)
        self.fields["team"].queryset = teams
        self.fields["eval_sets"].queryset = DatasetSource.objects.filter(team__in=teams).select_related("team")
        self.fields["eval_sets"].label_from_instance = lambda s: f"{s.name} ({s.team}, {s.get_format_display()})"


class DifficultyJobForm(_ModelFields):
    n = forms.IntegerField(initial=16, min_value=2, max_value=1024,
                           help_text="Samples per problem (OR1: 16 for math, 8 for code).")
    max_tokens = forms.IntegerField(required=False, min_value=1,
                                    help_text="Response tokens; default the run's last stage (32768 for a model path).")
    limit = forms.IntegerField(required=False, min_value=1, help_text="Only the first N problems.")
    model_name = forms.CharField(required=False, max_length=200,
                                 help_text="Key under extra_info.model_difficulty, e.g. DeepSeek-R1-Distill-Qwen-7B; "
                                           "default from the model.")
    field_order = ["checkpoint", "model_path", "n", "temperature", "max_tokens", "limit", "model_name", "engine",
                   "dtype", "launcher", "cluster", "gpus"]

    def __init__(self, *args, user, source: DatasetSource, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["checkpoint"].queryset = self.fields["checkpoint"].queryset.filter(
            run__experiment__project__team=source.team
        )
        self.fields["cluster"].queryset = self.fields["cluster"].queryset.filter(team=source.team)
        if source.ability == DatasetSource.Ability.CODE:
            self.fields["n"].initial = 8
