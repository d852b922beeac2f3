"""Django forms generated from the spec's pydantic sections, so the editor never drifts from the contract.

Each scalar field of a spec section (``Stage``, ``EntropyControl``, ...) becomes a form field whose initial
value is the pydantic default and whose help text is the field's description. The forms do no validation of
their own: every field is text (or a checkbox) and the values go to ``or1_train.spec.parse_spec`` as typed,
so the one set of rules and messages is the spec's, and a wrong entry is shown back exactly as it was typed.
Nested sections and lists (``model.bootstrap``, ``data.sources``) are separate forms of the editor.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from django import forms
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from experiments.forms.wording import label_for

Kind = Literal["bool", "int", "float", "str", "choice", "pair"]


@dataclass(frozen=True)
class SpecField:
    """What the editor needs to know about one scalar spec field."""

    name: str
    kind: Kind
    optional: bool  # None is a valid value (an empty box means "not set")
    required: bool  # the spec has no default for it
    default: Any
    choices: tuple[str, ...] = ()


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``| None``: returns the bare type and whether None is allowed."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def spec_fields(model: type[BaseModel]) -> list[SpecField]:
    """The scalar fields of ``model`` in declaration order; nested models and lists are left out."""
    out = []
    for name, info in model.model_fields.items():
        bare, optional = _unwrap(info.annotation)
        origin = typing.get_origin(bare)
        choices: tuple[str, ...] = ()
        if bare is bool:
            kind: Kind = "bool"
        elif bare is int:
            kind = "int"
        elif bare is float:
            kind = "float"
        elif bare is str:
            kind = "str"
        elif origin is Literal:
            kind, choices = "choice", tuple(str(c) for c in typing.get_args(bare))
        elif origin is tuple and len(typing.get_args(bare)) == 2:
            kind = "pair"
        else:
            continue  # a nested section or a list: its own form
        default = info.get_default(call_default_factory=True)
        out.append(
            SpecField(
                name,
                kind,
                optional,
                required=default is PydanticUndefined,
                default=None if default is PydanticUndefined else default,
                choices=choices,
            )
        )
    return out


def display(value: Any) -> str:
    """A spec value as the editor shows it in a text box (``1e-06``, ``1, 4``; None is empty)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(display(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _form_field(field: SpecField, help_text: str) -> forms.Field:
    label = label_for(field.name)
    if field.kind == "bool":
        return forms.BooleanField(required=False, label=label, help_text=help_text)
    if field.kind == "choice":
        blank = [("", "(not set)")] if field.optional else []
        widget = forms.Select(choices=blank + [(c, c) for c in field.choices])
        return forms.CharField(required=False, label=label, help_text=help_text, widget=widget)
    attrs: dict[str, str] = {"autocomplete": "off", "spellcheck": "false"}
    if field.kind == "int":
        attrs |= {"inputmode": "numeric", "class": "num"}
    elif field.kind == "float":
        attrs |= {"inputmode": "decimal", "class": "num"}
    elif field.kind == "pair":
        attrs |= {"placeholder": "first, last", "class": "num"}
    widget = forms.Textarea(attrs={"rows": 2}) if field.name == "description" else forms.TextInput(attrs)
    return forms.CharField(required=False, strip=True, label=label, help_text=help_text, widget=widget)


class SectionForm(forms.Form):
    """A form for one spec section; ``spec_model`` and ``fields_info`` are set by :func:`section_form`."""

    spec_model: type[BaseModel]
    fields_info: dict[str, SpecField]
    #: fields shown before the rest (the rest may sit behind a "more" disclosure)
    primary: tuple[str, ...] = ()

    @classmethod
    def initial_from(cls, values: dict[str, Any] | None) -> dict[str, Any]:
        """Initial form data for a spec section: the section's values, the spec's defaults elsewhere."""
        values = values or {}
        initial: dict[str, Any] = {}
        for name, info in cls.fields_info.items():
            value = values.get(name, info.default)
            initial[name] = bool(value) if info.kind == "bool" else display(value)
        return initial

    def spec_values(self) -> dict[str, Any]:
        """The section as spec input: text as typed, pairs split, empty boxes left out (-> default)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        out: dict[str, Any] = {}
        for name, info in self.fields_info.items():
            value = data.get(name)
            if info.kind == "bool":
                out[name] = bool(value)
            elif value in (None, ""):
                continue
            elif info.kind == "pair":
                out[name] = [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
            else:
                out[name] = value
        return out

    def default_of(self, name: str) -> str:
        """The spec's default for a field, as the editor shows it next to the box."""
        info = self.fields_info.get(name)
        if info is None:
            return ""
        return "required" if info.required else (display(info.default) or "not set")

    def _rows(self, names) -> list[dict[str, Any]]:
        return [{"field": self[name], "default": self.default_of(name)} for name in names]

    def all_rows(self) -> list[dict[str, Any]]:
        return self._rows(self.fields)

    def primary_rows(self) -> list[dict[str, Any]]:
        return self._rows(name for name in self.primary if name in self.fields)

    def other_rows(self) -> list[dict[str, Any]]:
        return self._rows(name for name in self.fields if name not in self.primary)


def section_form(
    model: type[BaseModel],
    *,
    skip: tuple[str, ...] = (),
    primary: tuple[str, ...] = (),
    extra: dict[str, forms.Field] | None = None,
) -> type[SectionForm]:
    """A SectionForm class for the scalar fields of ``model`` (minus ``skip``), plus ``extra`` fields."""
    infos = {f.name: f for f in spec_fields(model) if f.name not in skip}
    attrs: dict[str, Any] = {
        name: _form_field(info, model.model_fields[name].description or "") for name, info in infos.items()
    }
    attrs |= extra or {}
    attrs |= {"spec_model": model, "fields_info": infos, "primary": primary}
    return type(f"{model.__name__}Form", (SectionForm,), attrs)
