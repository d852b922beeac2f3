"""The experiment editor: one form per spec section, formsets for the data mix and the stage table.

``SpecEditor`` turns a spec into forms (to start from a recipe or an experiment), turns a POST back into a spec,
validates it with ``or1_train.spec.parse_spec`` and puts each ``FieldError`` on the form field its path names
(``stages[1].max_response_tokens`` -> the stage table's row 2, column "Max response tokens"). A POST is always
re-rendered from what was submitted, dynamic rows included, so an error never loses what the user typed.

Row operations (add, remove, move a stage up or down) also travel as a POST (``row_op=stages:up:2``): the
editor rebuilds that formset from the submitted rows with the change applied and renumbered, so a row's index
is always its spec index and the error paths keep pointing at the right row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from django import forms
from django.core.exceptions import ValidationError
from django.forms import formset_factory

from experiments.forms.sections import SectionForm, section_form
from experiments.forms.wording import describe_path, humanize, label_for, tokens
from experiments.models import DatasetSource, SlurmCluster, Team
from or1_train.spec import (
    CheckpointSpec,
    DataSource,
    EngineSpec,
    EntropyControl,
    EvaluationSpec,
    FieldError,
    LossSpec,
    ModelBootstrap,
    ModelSpec,
    OnlineFilter,
    OptimSpec,
    ResourceSpec,
    RewardSpec,
    RolloutSpec,
    RunSpec,
    SpecError,
    Stage,
    StageTransition,
    parse_spec,
)

#: per-source settings that are sections of their own; the editor shows them as one line of YAML each
SOURCE_OPTIONS = ("synthetic", "difficulty")


def _text(label: str, help_text: str = "", rows: int | None = None) -> forms.CharField:
    code = {"rows": rows, "spellcheck": "false", "wrap": "off", "class": "code"}
    widget = forms.Textarea(attrs=code) if rows else forms.TextInput()
    return forms.CharField(required=False, strip=True, label=label, help_text=help_text, widget=widget)


GeneralForm = section_form(
    RunSpec,
    primary=("name", "description", "seed"),
    extra={"tags": _text("Tags", "Short labels, separated by commas.")},
)
ModelForm = section_form(ModelSpec)
ModelForm.base_fields["path"].label = "Local path or Hugging Face id"
BootstrapForm = section_form(
    ModelBootstrap,
    extra={
        "build": forms.BooleanField(
            required=False,
            label=label_for("build"),
            help_text="Build a small Qwen2 model and warm it up on the synthetic task (the CPU demo), "
            "since no weights can be downloaded there.",
        )
    },
)
SourceForm = section_form(
    DataSource,
    extra={
        "extra": _text(
            label_for("extra"),
            "One setting per line, e.g. synthetic: {levels: [1, 3]} or difficulty: {model: ..., min: 1, max: 15}.",
            rows=1,
        )
    },
)
StageForm = section_form(Stage)
EvaluationForm = section_form(
    EvaluationSpec,
    extra={"sets": _text("Evaluation sets (YAML)", "A list of {name, path, format, synthetic, limit}.", rows=4)},
)

SourceFormSet = formset_factory(SourceForm, extra=0)
StageFormSet = formset_factory(StageForm, extra=0)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    form: type[SectionForm]
    intro: str
    advanced: bool = False
    primary: tuple[str, ...] = ()


def _intro(model: type) -> str:
    return (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


SECTIONS = [
    Section("entropy", "Entropy control", section_form(EntropyControl), _intro(EntropyControl)),
    Section(
        "resources",
        "Resources",
        section_form(ResourceSpec, primary=("launcher", "cluster", "gpus_per_node", "nodes", "max_restarts")),
        "Where the run goes: a Celery worker on one host (local) or one of the team's Slurm clusters "
        "(registered by an operator in the admin).",
    ),
    Section("loss", "Loss", section_form(LossSpec), _intro(LossSpec), advanced=True),
    Section("optim", "Optimizer", section_form(OptimSpec), _intro(OptimSpec), advanced=True),
    Section("filter", "Online filter", section_form(OnlineFilter), _intro(OnlineFilter), advanced=True),
    Section("rollout", "Rollout engine", section_form(RolloutSpec), _intro(RolloutSpec), advanced=True),
    Section("engine", "Actor engine", section_form(EngineSpec), _intro(EngineSpec), advanced=True),
    Section("reward", "Verifiers", section_form(RewardSpec), _intro(RewardSpec), advanced=True),
    Section("evaluation", "Evaluation", EvaluationForm, _intro(EvaluationSpec), advanced=True),
    Section("checkpoints", "Checkpoints", section_form(CheckpointSpec), _intro(CheckpointSpec), advanced=True),
    Section("transition", "Stage transitions", section_form(StageTransition), _intro(StageTransition), advanced=True),
]


@dataclass(frozen=True)
class Problem:
    """One error for the summary at the top of the form."""

    where: str  # "Stage 2 · Max response tokens"
    message: str  # in the editor's words
    path: str  # the spec path, for people who know the YAML
    anchor: str  # the id of the input (or section) to jump to


def options_text(source: dict[str, Any]) -> str:
    """``synthetic: {levels: [1, 3], seed: 1}``, one line per option the source sets."""
    lines = []
    for key in SOURCE_OPTIONS:
        if source.get(key) is not None:
            value = yaml.safe_dump(source[key], default_flow_style=True, sort_keys=False, width=10**6)
            lines.append(f"{key}: {value.strip()}")
    return "\n".join(lines)


def _parse_yaml(text: str) -> tuple[Any, str | None]:
    try:
        return yaml.safe_load(text) if text.strip() else None, None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return None, f"is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"


def shape_like(full: Any, compact: Any, base: Any) -> Any:
    """The spec to store: values from ``full``, keys that differ from a default (``compact``) or that the
    starting spec (``base``) wrote out. A duplicate's YAML then differs from its origin's only where the
    researcher changed something, instead of losing every default the origin spelled out."""
    if isinstance(full, dict):
        compact = compact if isinstance(compact, dict) else {}
        base = base if isinstance(base, dict) else {}
        return {
            key: shape_like(value, compact.get(key), base.get(key))
            for key, value in full.items()
            if key in compact or key in base
        }
    if isinstance(full, list) and full and isinstance(full[0], dict):
        compact = compact if isinstance(compact, list) else []
        base = base if isinstance(base, list) else []
        return [
            shape_like(item, compact[i] if i < len(compact) else {}, base[i] if i < len(base) else {})
            for i, item in enumerate(full)
        ]
    return full


class SpecEditor:
    """All the forms of one experiment spec, bound to a POST or initialised from a spec."""

    def __init__(
        self,
        team: Team,
        *,
        data: Any = None,
        spec: dict[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
    ):
        self.team = team
        self.data = data
        self.registered = list(DatasetSource.objects.filter(team=team).order_by("name"))
        self.section_errors: dict[str, list[str]] = {"general": [], "sources": [], "stages": []}
        self.problems: list[Problem] = []
        spec = spec or {}
        model = spec.get("model") or {}
        if data is not None:
            self.general = GeneralForm(data)
            self.model = ModelForm(data, prefix="model")
            self.bootstrap = BootstrapForm(data, prefix="model-bootstrap")
            self.sources = SourceFormSet(data, prefix="sources")
            self.stages = StageFormSet(data, prefix="stages")
            self.sections = {s.key: s.form(data, prefix=s.key) for s in SECTIONS}
        else:
            self.general = GeneralForm(initial=GeneralForm.initial_from(spec) | {"tags": ", ".join(tags)})
            self.model = ModelForm(prefix="model", initial=ModelForm.initial_from(model))
            self.bootstrap = BootstrapForm(
                prefix="model-bootstrap",
                initial=BootstrapForm.initial_from(model.get("bootstrap"))
                | {"build": model.get("bootstrap") is not None},
            )
            sources = (spec.get("data") or {}).get("sources") or []
            self.sources = self._source_formset(
                [SourceForm.initial_from(s) | {"extra": options_text(s)} for s in sources]
            )
            self.stages = self._stage_formset([StageForm.initial_from(s) for s in spec.get("stages") or []])
            self.sections = {}
            for s in SECTIONS:
                values = spec.get(s.key) or {}
                initial = s.form.initial_from(values)
                if s.key == "evaluation":
                    sets = values.get("sets") or []
                    initial["sets"] = (
                        yaml.safe_dump(sets, sort_keys=False, default_flow_style=None, width=10**6) if sets else ""
                    )
                self.sections[s.key] = s.form(prefix=s.key, initial=initial)
        self.clusters = list(SlurmCluster.objects.filter(team=team).values_list("name", flat=True))
        self._cluster_choices(self.sections["resources"])
        if data is not None:
            for form in self._all_forms():
                form.is_valid()  # every field is optional text: this only fills cleaned_data
            if not self.sources.is_valid() or not self.stages.is_valid():
                self._formset_problems()

    # ------------------------------------------------------------------ building blocks

    def _cluster_choices(self, form: forms.Form) -> None:
        """``resources.cluster`` as a choice of the team's Slurm clusters (shown for the Slurm launcher only,
        see editor.js); a name that is no longer registered stays selectable, marked, so it is not lost."""
        current = str(form["cluster"].value() or "")
        choices = [("", "(choose a cluster)")] + [(name, name) for name in self.clusters]
        if current and current not in self.clusters:
            choices.append((current, f"{current} (not registered)"))
        field = form.fields["cluster"]
        field.widget = forms.Select(choices=choices, attrs={"data-launcher": "slurm"})
        if not self.clusters:
            field.help_text = "This team has no Slurm cluster yet: an operator registers one in the admin."

    def _source_formset(self, rows: list[dict[str, Any]]):
        return SourceFormSet(prefix="sources", initial=rows)

    def _stage_formset(self, rows: list[dict[str, Any]]):
        return StageFormSet(prefix="stages", initial=rows)

    def _all_forms(self) -> list[forms.Form]:
        return [self.general, self.model, self.bootstrap, *self.sections.values()]

    def _formset_problems(self) -> None:
        for key, formset in (("sources", self.sources), ("stages", self.stages)):
            for message in formset.non_form_errors():
                self._add_section_error(key, f"the table could not be read ({message}); reload the page")

    @property
    def tags(self) -> list[str]:
        raw = self.general.cleaned_data.get("tags", "") if self.data is not None else ""
        return [tag.strip() for tag in raw.split(",") if tag.strip()]

    @property
    def is_bound(self) -> bool:
        return self.data is not None

    # ------------------------------------------------------------------ what the templates show

    def source_rows(self) -> list[dict[str, Any]]:
        """Each source row with its share of the mix (when every weight is a positive number) and, for a
        registered source, how many prompts it holds."""
        known = {s.path: s for s in self.registered}
        weights = []
        for form in self.sources.forms:
            try:
                weights.append(float(form["weight"].value()))
            except (TypeError, ValueError):
                weights.append(None)
        valid = bool(weights) and all(w is not None and w > 0 for w in weights)
        total = sum(weights) if valid else 0.0
        return [
            {
                "form": form,
                "share": 100.0 * weights[i] / total if valid else None,
                "registered": known.get(str(form["path"].value() or "").strip()),
            }
            for i, form in enumerate(self.sources.forms)
        ]

    def stage_rows(self) -> list[dict[str, Any]]:
        """Each stage row with the step it starts at and its N_SGD (rollout batch / mini-batch)."""
        rows: list[dict[str, Any]] = []
        start: int | None = 0
        for form in self.stages.forms:
            n_sgd: float | None = None
            try:
                rollout, mini = int(form["rollout_batch"].value()), int(form["mini_batch"].value())
                if rollout > 0 and mini > 0:
                    n_sgd = rollout // mini if rollout % mini == 0 else rollout / mini
            except (TypeError, ValueError):
                pass
            rows.append({"form": form, "start": start, "n_sgd": n_sgd})
            try:
                start = None if start is None else start + int(form["steps"].value())
            except (TypeError, ValueError):
                start = None  # unknown from here on
        return rows

    def section_list(self) -> list[dict[str, Any]]:
        return [{"section": s, "form": self.sections[s.key]} for s in SECTIONS]

    @property
    def advanced_has_errors(self) -> bool:
        """Open the advanced section when a problem sits in it, so no error is hidden."""
        return any(self.sections[s.key].errors for s in SECTIONS if s.advanced)

    # ------------------------------------------------------------------ row operations

    def apply_row_op(self, op: str, registered_id: str | None = None) -> str:
        """Apply ``kind:action[:index]`` and return the kind of rows changed. Actions: ``add`` (a stage is a
        copy of the last one), ``add-registered`` (a source from ``registered_id``), ``remove``, ``up``,
        ``down``."""
        kind, _, rest = op.partition(":")
        action, _, index_text = rest.partition(":")
        if kind not in ("sources", "stages"):
            raise ValidationError(f"unknown row operation {op!r}")
        formset = self.sources if kind == "sources" else self.stages
        rows = [{name: form[name].value() for name in form.fields} for form in formset.forms]
        index = int(index_text) if index_text.isdigit() else None
        if action == "add" and kind == "stages":
            rows.append(dict(rows[-1], name="") if rows else StageForm.initial_from({}))
        elif action == "add" and kind == "sources":
            rows.append(SourceForm.initial_from({}) | {"extra": ""})
        elif action == "add-registered" and kind == "sources":
            source = next((s for s in self.registered if str(s.pk) == (registered_id or "")), None)
            if source is None:
                raise ValidationError("choose one of the team's registered dataset sources")
            row = {"name": source.name, "path": source.path, "format": source.format}
            rows.append(SourceForm.initial_from({}) | row | {"extra": ""})
        elif action == "remove" and index is not None and index < len(rows):
            del rows[index]
        elif action == "up" and index is not None and 0 < index < len(rows):
            rows[index - 1], rows[index] = rows[index], rows[index - 1]
        elif action == "down" and index is not None and index + 1 < len(rows):
            rows[index], rows[index + 1] = rows[index + 1], rows[index]
        else:
            raise ValidationError(f"unknown row operation {op!r}")
        if kind == "sources":
            self.sources = self._source_formset(rows)
        else:
            self.stages = self._stage_formset(rows)
        return kind

    # ------------------------------------------------------------------ form -> spec

    def raw_spec(self) -> tuple[dict[str, Any], list[FieldError]]:
        """The spec as typed (text values, which the spec's models coerce) and the problems found before
        the spec could even be assembled (unreadable YAML in an options box)."""
        local: list[FieldError] = []
        spec = self.general.spec_values()
        model = self.model.spec_values()
        if self.bootstrap.cleaned_data.get("build"):
            model["bootstrap"] = self.bootstrap.spec_values()
        spec["model"] = model
        sources = []
        for i, form in enumerate(self.sources.forms):
            row = form.spec_values()
            options, problem = _parse_yaml(form.cleaned_data.get("extra", ""))
            if problem is None and options is not None and not isinstance(options, dict):
                problem = "must be settings such as synthetic: {levels: [1, 3]}"
            if problem is None and isinstance(options, dict):
                unknown = sorted(set(map(str, options)) - set(SOURCE_OPTIONS))
                if unknown:
                    problem = f"only {' and '.join(SOURCE_OPTIONS)} can be set here, not {', '.join(unknown)}"
                else:
                    row |= options
            if problem:
                local.append(FieldError(f"data.sources[{i}].extra", problem))
            sources.append(row)
        spec["data"] = {"sources": sources}
        spec["stages"] = [form.spec_values() for form in self.stages.forms]
        for key, form in self.sections.items():
            spec[key] = form.spec_values()
        sets, problem = _parse_yaml(self.sections["evaluation"].cleaned_data.get("sets", ""))
        if problem is None and sets is not None and not isinstance(sets, list):
            problem = "must be a YAML list, one item per set (- name: ..., path: ...)"
        if problem:
            local.append(FieldError("evaluation.sets", problem))
        elif sets:
            spec["evaluation"]["sets"] = sets
        return spec, local

    def clean_spec(self, base: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The validated spec to store (shaped like ``base``), or None with every problem on its field."""
        raw, problems = self.raw_spec()
        try:
            parsed = parse_spec(raw)
        except SpecError as exc:
            problems = problems + exc.errors
            parsed = None
        cluster = parsed.resources.cluster if parsed is not None else None
        if cluster and cluster not in self.clusters:
            known = ", ".join(self.clusters) or "none yet"
            problems = problems + [FieldError("resources.cluster", f"is not a Slurm cluster of this team ({known})")]
        if problems or parsed is None:
            self.add_errors(problems)
            return None
        return shape_like(
            parsed.model_dump(mode="json"), parsed.model_dump(mode="json", exclude_defaults=True), base or {}
        )

    # ------------------------------------------------------------------ errors -> fields

    def _locate(self, path: str) -> tuple[forms.Form | None, str | None, list[str | int], str]:
        """The form and field a spec path names, what is left of the path, and the section it falls into."""
        toks = tokens(path)
        head = toks[0] if toks else None
        rest = toks[1:]

        def field_of(form: forms.Form, remainder: list[str | int], fallback: str | None):
            if remainder and remainder[0] in form.fields:
                return form, str(remainder[0]), remainder[1:]
            return form, fallback, remainder

        if head == "stages":
            if rest and isinstance(rest[0], int) and rest[0] < len(self.stages.forms):
                return (*field_of(self.stages.forms[rest[0]], rest[1:], None), "stages")
            return None, None, rest, "stages"
        if head == "data":
            if len(rest) >= 2 and rest[0] == "sources" and isinstance(rest[1], int):
                if rest[1] < len(self.sources.forms):
                    return (*field_of(self.sources.forms[rest[1]], rest[2:], "extra"), "sources")
            return None, None, rest[1:], "sources"
        if head == "model":
            if rest and rest[0] == "bootstrap":
                return (*field_of(self.bootstrap, rest[1:], "build"), "model")
            return (*field_of(self.model, rest, None), "model")
        if head in self.sections:
            form = self.sections[head]
            if rest and rest[0] == "sets" and head == "evaluation":
                return form, "sets", rest[1:], head
            return (*field_of(form, rest, None), head)
        if head in self.general.fields:
            return self.general, str(head), rest, "general"
        return None, None, toks, "general"

    def add_errors(self, errors: list[FieldError]) -> None:
        for error in errors:
            form, field, rest, section = self._locate(error.path)
            leaf = next((t for t in reversed(tokens(error.path)) if isinstance(t, str)), None)
            message = humanize(error.message, leaf)
            if rest:
                where = ".".join(f"item {t + 1}" if isinstance(t, int) else t for t in rest)
                message = f"{where}: {message}"
            if form is not None and field is not None:
                form.add_error(field, message)
                anchor = form[field].auto_id
            elif form is not None:
                form.add_error(None, message)
                anchor = f"section-{section}"
            else:
                self._add_section_error(section, message)
                anchor = f"section-{section}"
            self.problems.append(Problem(describe_path(error.path), message, error.path, anchor))

    def _add_section_error(self, section: str, message: str) -> None:
        self.section_errors.setdefault(section, []).append(message)

    def add_validation_error(self, exc: ValidationError) -> None:
        """A rule the actions enforce beyond the spec (a name already taken in the project)."""
        for field, messages in exc.message_dict.items():
            target = field if field in self.general.fields else None
            for message in messages:
                self.general.add_error(target, message)
                anchor = self.general[target].auto_id if target else "section-general"
                self.problems.append(Problem(label_for(field), message, field, anchor))


def unique_name(existing: set[str], name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... whichever the project does not have yet."""
    name = name or "experiment"
    if name not in existing:
        return name
    stem, _, suffix = name.rpartition("-")
    if stem and suffix.isdigit():
        name = stem
    n = 2
    while f"{name}-{n}" in existing:
        n += 1
    return f"{name}-{n}"
