"""Which runs a comparison shows: filters (experiment, sweep, tag, free text) and an explicit pick.

The filters narrow the candidate list; the explicitly picked runs (``runs=3,5,8``) are compared, or, when none
is picked, every candidate up to ``MAX_COMPARED`` (so "all runs of this sweep" is one choice in a select).
Everything goes through ``visible_to``: a run of another team is never a candidate, also not by its id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from experiments.models import Experiment, Run, Sweep

MAX_COMPARED = 50
MAX_CANDIDATES = 200


@dataclass
class Selection:
    experiment: int | None = None
    sweep: int | None = None
    tag: str = ""
    q: str = ""
    runs: list[int] = field(default_factory=list)

    @classmethod
    def from_query(cls, query) -> Selection:
        """From a QueryDict (or any ``.get``/``.getlist`` mapping); unparsable numbers are ignored."""
        return cls(
            experiment=_int(query.get("experiment")),
            sweep=_int(query.get("sweep")),
            tag=(query.get("tag") or "").strip(),
            q=(query.get("q") or "").strip(),
            runs=list(dict.fromkeys(parse_ids(query.getlist("runs")))),
        )

    @property
    def filtered(self) -> bool:
        return bool(self.experiment or self.sweep or self.tag or self.q)


def _int(text) -> int | None:
    try:
        return int(str(text).strip().lstrip("#"))
    except (TypeError, ValueError):
        return None


def parse_ids(values: Iterable[str]) -> Iterable[int]:
    for value in values:
        for part in str(value).split(","):
            number = _int(part)
            if number is not None:
                yield number


def candidates(user, selection: Selection) -> QuerySet[Run]:
    """Runs matching the filters, newest first (all visible runs when there is no filter)."""
    runs = Run.objects.visible_to(user).select_related("experiment__project__team", "sweep")
    if selection.experiment:
        runs = runs.filter(experiment_id=selection.experiment)
    if selection.sweep:
        runs = runs.filter(sweep_id=selection.sweep)
    if selection.tag:
        # Tags are a JSON list; filtering in Python over the (few) experiments works on every database.
        tagged = [
            pk for pk, tags in Experiment.objects.visible_to(user).values_list("pk", "tags") if selection.tag in tags
        ]
        runs = runs.filter(experiment_id__in=tagged)
    if selection.q:
        text = Q(experiment__name__icontains=selection.q) | Q(experiment__description__icontains=selection.q)
        text |= Q(experiment__project__name__icontains=selection.q) | Q(sweep__name__icontains=selection.q)
        number = _int(selection.q)
        if number is not None:
            text |= Q(pk=number)
        runs = runs.filter(text)
    return runs.order_by("-created_at", "-id")


def compared(user, selection: Selection) -> list[Run]:
    """The runs to draw, oldest first (a stable legend order): the picked ones, else every candidate."""
    if selection.runs:
        runs = Run.objects.visible_to(user).filter(pk__in=selection.runs[:MAX_COMPARED])
        runs = runs.select_related("experiment__project__team", "sweep")
    elif selection.filtered:
        runs = candidates(user, selection)[:MAX_COMPARED]
    else:
        return []
    return sorted(runs, key=lambda run: (run.created_at, run.pk))


def choices(user) -> dict:
    """The filter menus: experiments, sweeps and tags the user can see."""
    experiments = list(Experiment.objects.visible_to(user).select_related("project").order_by("project__name", "name"))
    tags = sorted({tag for e in experiments for tag in e.tags})
    sweeps = list(Sweep.objects.visible_to(user).select_related("project").order_by("-created_at")[:200])
    return {"experiments": experiments, "sweeps": sweeps, "tags": tags}
