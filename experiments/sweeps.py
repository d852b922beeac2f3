"""Sweeps: expand a parameter space over spec fields into runs of a base experiment, and keep them going.

The space (``Sweep.space``) is written in spec field paths, the same paths the spec's own errors use::

    {"grid":   {"entropy.target": [0.1, 0.2, 0.3], "stages[0].max_response_tokens": [64, 96]},
     "random": {"loss.clip_high": {"uniform": [0.2, 0.3]}, "optim.lr": {"log_uniform": [1e-7, 1e-5]},
                "reward.workers": {"int_uniform": [1, 4]}, "rollout.engine": {"choice": ["vllm", "hf"]}}}

Configurations are the grid's cartesian product crossed with ``samples`` random draws (a ``random.Random``
seeded with ``sample_seed``, so the same sweep draws the same points); each configuration runs ``seeds``
times with the spec's ``seed`` set to base seed + 0, 1, ... A 3 x 2 grid with 2 seeds is 12 points.

Every point's spec is validated by the trainer's contract when the sweep is created, before anything
launches. A point that does not validate is kept with its errors (state ``invalid``) and never launched; a
space that yields no valid point at all, or a path the base spec cannot have, is refused outright.

Launching: ``advance_sweep`` fills the free slots under ``concurrency`` with the next pending points, through
``actions.launch_run`` (so a sweep's runs are ordinary runs, with ``Run.sweep`` set), on the sweep's launcher
(written into each point's ``resources.launcher``). It runs when a sweep is created and periodically for
every live sweep (``advance_sweeps``, from a Celery beat entry), and marks a sweep finished once nothing is
pending or running. ``cancel_sweep`` stops what is running and launches nothing more.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.urls import reverse

from experiments import access, actions
from experiments.models import EvaluationResult, Experiment, InvalidTransition, Run, Sweep, SweepPoint
from experiments.models.audit import AuditEntry, record
from or1_train.spec import FieldError, SpecError, parse_spec

#: the most points one sweep may expand to: past this it is surely a mistake in the space
MAX_POINTS = 1000
SEED_PATH = "seed"
LAUNCHER_PATH = "resources.launcher"
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


# --------------------------------------------------------------------------------------------- paths


def parse_path(path: str) -> list[str | int]:
    """``stages[0].max_response_tokens`` -> ``["stages", 0, "max_response_tokens"]``; ValueError if malformed."""
    if not isinstance(path, str) or not path:
        raise ValueError("a spec field path is a non-empty string such as entropy.target")
    parts: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if not match:
            raise ValueError(f"{path!r} is not a spec field path (write it like stages[0].max_response_tokens)")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def check_path(spec: dict[str, Any], path: str) -> str | None:
    """Why ``path`` cannot be set in ``spec`` (a list index past its end, a field inside a plain value), or
    None. Missing sections are fine: setting ``entropy.target`` creates ``entropy``."""
    node: Any = spec
    walked = ""
    for part in parse_path(path):
        if isinstance(part, int):
            if not isinstance(node, list):
                return f"{walked or 'the spec'} is not a list"
            if part >= len(node):
                return f"{walked}[{part}] does not exist: the base spec's {walked} has {len(node)} item(s)"
            node, walked = node[part], f"{walked}[{part}]"
        else:
            if not isinstance(node, dict):
                return f"{walked} is a value, not a section with fields"
            node, walked = node.get(part, {}), f"{walked}.{part}" if walked else part
    return None


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``spec`` in place (``check_path`` must have passed)."""
    parts = parse_path(path)
    node: Any = spec
    for part, following in zip(parts, parts[1:]):
        if isinstance(part, int):
            node = node[part]
        else:
            node = node.setdefault(part, [] if isinstance(following, int) else {})
    node[parts[-1]] = value


def apply_overrides(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for path, value in overrides.items():
        set_path(out, path, value)
    return out


# --------------------------------------------------------------------------------------------- space


@dataclass(frozen=True)
class Distribution:
    kind: str
    args: tuple

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.args)
        low, high = self.args
        if self.kind == "int_uniform":
            return rng.randint(low, high)
        if self.kind == "log_uniform":
            return _tidy(math.exp(rng.uniform(math.log(low), math.log(high))))
        return _tidy(rng.uniform(low, high))


def _tidy(value: float) -> float:
    """Six significant digits: a drawn 0.23174 reads as a setting, 0.2317403918 reads as noise."""
    return float(f"{value:.6g}")


@dataclass
class Space:
    grid: dict[str, list] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)

    @property
    def swept_paths(self) -> list[str]:
        return [*self.grid, *self.random]


def _distribution(path: str, raw: Any) -> tuple[Distribution | None, str]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DISTRIBUTIONS:
        return None, f"must be one of {{{', '.join(f'{d}: ...' for d in DISTRIBUTIONS)}}}"
    kind, args = next(iter(raw.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            return None, "choice needs a non-empty list of values"
        return Distribution(kind, tuple(args)), ""
    if not (isinstance(args, list) and len(args) == 2 and all(_is_number(a) for a in args)):
        return None, f"{kind} needs [low, high]"
    low, high = args
    if low > high:
        return None, f"{kind}: low ({low}) must be <= high ({high})"
    if kind == "int_uniform" and not all(isinstance(a, int) for a in args):
        return None, "int_uniform needs whole numbers"
    if kind == "log_uniform" and low <= 0:
        return None, "log_uniform needs low > 0"
    return Distribution(kind, (low, high)), ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_space(raw: Any, base_spec: dict[str, Any], *, seeds: int, samples: int) -> Space:
    """The space, or SpecError naming each problem at its path in the request (``space.grid.<path>``)."""
    errors: list[FieldError] = []
    if not isinstance(raw, dict):
        raise SpecError([FieldError("space", 'must be {"grid": {path: [values]}, "random": {path: {...}}}')])
    for key in raw:
        if key not in ("grid", "random"):
            errors.append(FieldError(f"space.{key}", "is not a known section (grid or random)"))
    space = Space()
    seen: set[str] = set()
    for section in ("grid", "random"):
        entries = raw.get(section, {})
        if not isinstance(entries, dict):
            errors.append(FieldError(f"space.{section}", "must map spec field paths to values"))
            continue
        for path, values in entries.items():
            where = f"space.{section}.{path}"
            try:
                problem = check_path(base_spec, path)
            except ValueError as exc:
                problem = str(exc)
            if problem is None and path in seen:
                problem = "is swept twice (in grid and random)"
            if problem is None and path == LAUNCHER_PATH:
                problem = "is the sweep's launcher: set it on the sweep, not in the space"
            if problem is None and path == SEED_PATH and seeds > 1:
                problem = "is swept already, so seeds must be 1"
            if problem is None and section == "grid" and (not isinstance(values, list) or not values):
                problem = "must be a non-empty list of values"
            dist = None
            if problem is None and section == "random":
                dist, problem = _distribution(path, values)
                problem = problem or None
            if problem:
                errors.append(FieldError(where, problem))
                continue
            seen.add(path)
            if section == "grid":
                space.grid[path] = values
            else:
                space.random[path] = dist
    if not space.grid and not space.random and not errors:
        errors.append(FieldError("space", "sweeps nothing: give at least one path in grid or random"))
    if samples > 1 and not raw.get("random"):
        errors.append(FieldError("samples", "draws from the random section, which is empty"))
    if errors:
        raise SpecError(errors)
    return space


@dataclass(frozen=True)
class PlannedPoint:
    configuration: int
    overrides: dict[str, Any]
    spec: dict[str, Any]
    errors: list[FieldError]


def expand(
    base_spec: dict[str, Any], space: Space, *, seeds: int, samples: int, sample_seed: int, launcher: str
) -> list[PlannedPoint]:
    """Every point of the space, each with its spec and that spec's validation errors (empty when valid)."""
    grid_points = [dict(zip(space.grid, values)) for values in itertools.product(*space.grid.values())]
    rng = random.Random(sample_seed)
    draws = (
        [{path: dist.draw(rng) for path, dist in space.random.items()} for _ in range(samples)]
        if space.random
        else [{}]
    )
    base_seed = base_spec.get(SEED_PATH, 0) if isinstance(base_spec.get(SEED_PATH, 0), int) else 0
    total = len(grid_points) * len(draws) * seeds
    if total > MAX_POINTS:
        raise SpecError([FieldError("space", f"expands to {total} runs; a sweep may have at most {MAX_POINTS}")])
    points = []
    for configuration, (grid_values, drawn) in enumerate(itertools.product(grid_points, draws)):
        for repeat in range(seeds):
            overrides = grid_values | drawn
            if seeds > 1 or SEED_PATH not in overrides:
                overrides = overrides | {SEED_PATH: base_seed + repeat}
            spec = apply_overrides(base_spec, overrides | {LAUNCHER_PATH: launcher})
            try:
                parse_spec(spec)
                errors = []
            except SpecError as exc:
                errors = exc.errors
            points.append(PlannedPoint(configuration, overrides, spec, errors))
    return points


# ------------------------------------------------------------------------------------------ lifecycle


def create_sweep(
    base: Experiment,
    user,
    *,
    name: str,
    space: dict[str, Any],
    seeds: int = 1,
    samples: int = 1,
    sample_seed: int = 0,
    concurrency: int = 1,
    launcher: str | None = None,
) -> Sweep:
    """Validate and expand the space, store every point, and launch the first ``concurrency`` valid ones.

    Raises PermissionDenied for a viewer, SpecError for a malformed space (paths ``space.grid.<path>``, ...),
    ValidationError for the other fields or a space without a single valid point.
    """
    actions.require_write(base.project.team, user)
    name = (name or "").strip()
    problems: dict[str, str] = {}
    if not name:
        problems["name"] = "give the sweep a name"
    elif Sweep.objects.filter(project=base.project, name=name).exists():
        problems["name"] = f"{base.project} already has a sweep named {name!r}"
    for label, value, low in (("seeds", seeds, 1), ("samples", samples, 1), ("concurrency", concurrency, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low or value > 32767:
            problems[label] = f"must be a whole number from {low} to 32767"
    if base.spec_errors:
        problems["base_experiment"] = "its spec does not validate: " + "; ".join(map(str, base.spec_errors))
    launcher = launcher or (base.parsed_spec.resources.launcher if base.parsed_spec else "local")
    if launcher not in actions.LAUNCH_TASKS:
        available = ", ".join(sorted(actions.LAUNCH_TASKS))
        problems["launcher"] = f"this platform cannot launch {launcher!r} runs (available: {available})"
    if problems:
        raise ValidationError(problems)
    parsed = parse_space(space, base.spec, seeds=seeds, samples=samples)
    planned = expand(base.spec, parsed, seeds=seeds, samples=samples, sample_seed=sample_seed, launcher=launcher)
    if all(p.errors for p in planned):
        first = "; ".join(map(str, planned[0].errors))
        raise ValidationError({"space": f"none of its {len(planned)} point(s) is a valid spec (the first: {first})"})
    with transaction.atomic():
        sweep = Sweep.objects.create(
            project=base.project,
            base_experiment=base,
            name=name,
            space=space,
            seeds=seeds,
            samples=samples,
            sample_seed=sample_seed,
            concurrency=concurrency,
            launcher=launcher,
            created_by=user,
        )
        SweepPoint.objects.bulk_create(
            SweepPoint(
                sweep=sweep,
                index=index,
                configuration=p.configuration,
                overrides=p.overrides,
                spec=p.spec,
                errors=[{"path": e.path, "message": e.message} for e in p.errors],
                state=SweepPoint.State.INVALID if p.errors else SweepPoint.State.PENDING,
            )
            for index, p in enumerate(planned)
        )
        record(
            team=base.project.team,
            actor=user,
            action=AuditEntry.Action.SWEEP_CREATE,
            target_type="sweep",
            target_id=sweep.pk,
            target_label=f"sweep {sweep.name}",
            points=len(planned),
            invalid=sum(1 for p in planned if p.errors),
        )
        advance_sweep(sweep)
    sweep.refresh_from_db()
    return sweep


def advance_sweep(sweep: Sweep) -> list[Run]:
    """Launch pending points into the free slots under the concurrency limit; finish a sweep that is done.

    The sweep's row is locked for the whole step, so two callers (beat and a page) never both fill one slot.
    """
    launched: list[Run] = []
    with transaction.atomic():
        sweep = (
            Sweep.objects.select_for_update(of=("self",))
            .select_related("base_experiment__project__team", "created_by")
            .get(pk=sweep.pk)
        )
        if sweep.is_over:
            return launched
        free = sweep.concurrency - sweep.runs.active().count()
        pending = sweep.points.filter(state=SweepPoint.State.PENDING).order_by("index")
        for point in pending.iterator():
            if free <= 0:
                break
            if sweep.created_by is None or not access.can_write(sweep.project.team_id, sweep.created_by):
                _stop(sweep, "its creator can no longer launch runs in this team")
                return launched
            try:
                with transaction.atomic():
                    run = actions.launch_run(sweep.base_experiment, sweep.created_by, spec=point.spec)
                    run.sweep = sweep
                    run.save(update_fields=["sweep"])
            except (SpecError, ValidationError) as exc:
                point.state, point.reason = SweepPoint.State.NOT_LAUNCHED, _words(exc)
                point.save(update_fields=["state", "reason"])
                continue
            except PermissionDenied as exc:
                _stop(sweep, str(exc))
                return launched
            point.run, point.state = run, SweepPoint.State.LAUNCHED
            point.save(update_fields=["run", "state"])
            launched.append(run)
            free -= 1
        if launched and sweep.status == Sweep.Status.PENDING:
            sweep.status = Sweep.Status.RUNNING
            sweep.save(update_fields=["status"])
        if not sweep.points.filter(state=SweepPoint.State.PENDING).exists() and not sweep.runs.active().exists():
            sweep.status = Sweep.Status.FINISHED
            sweep.status_reason = _summary(sweep)
            sweep.save(update_fields=["status", "status_reason"])
    return launched


def advance_sweeps() -> dict[int, int]:
    """Advance every live sweep; returns how many runs each launched. Beat calls this periodically."""
    live = Sweep.objects.filter(status__in=[Sweep.Status.PENDING, Sweep.Status.RUNNING]).values_list("pk", flat=True)
    return {pk: len(advance_sweep(Sweep(pk=pk))) for pk in live}


def cancel_sweep(sweep: Sweep, user) -> Sweep:
    """Launch nothing more and cancel every run still in flight; its creator and the team's admins may."""
    team = sweep.project.team
    if not access.can_manage(team, user, sweep.created_by_id):
        raise PermissionDenied(f"{user} may not cancel sweep {sweep.name}")
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if sweep.is_over:
            return sweep
        _stop(sweep, f"cancelled by {user}", status=Sweep.Status.CANCELLED)
        for run in sweep.runs.active():
            try:
                actions.cancel_run(run, user)
            except InvalidTransition:
                pass  # it ended (or began cancelling) on its own meanwhile
        record(
            team=team,
            actor=user,
            action=AuditEntry.Action.SWEEP_CANCEL,
            target_type="sweep",
            target_id=sweep.pk,
            target_label=f"sweep {sweep.name}",
        )
    return sweep


def _stop(sweep: Sweep, reason: str, status: str = Sweep.Status.CANCELLED) -> None:
    sweep.points.filter(state=SweepPoint.State.PENDING).update(
        state=SweepPoint.State.NOT_LAUNCHED, reason=f"the sweep stopped: {reason}"
    )
    sweep.status, sweep.status_reason = status, reason
    sweep.save(update_fields=["status", "status_reason"])


def _words(exc: Exception) -> str:
    if isinstance(exc, SpecError):
        return "; ".join(map(str, exc.errors))
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def _summary(sweep: Sweep) -> str:
    counts = {state: 0 for state in SweepPoint.State}
    for state in sweep.points.values_list("state", flat=True):
        counts[state] += 1
    return (
        f"{counts[SweepPoint.State.LAUNCHED]} run(s) launched, {counts[SweepPoint.State.INVALID]} invalid point(s), "
        f"{counts[SweepPoint.State.NOT_LAUNCHED]} not launched"
    )


# --------------------------------------------------------------------------------------------- reading


def swept_paths(sweep: Sweep) -> list[str]:
    """The spec fields the sweep varies, in the order written (the seed excluded: runs differing only in
    their seed are repeats of one configuration)."""
    paths = [*sweep.space.get("grid", {}), *sweep.space.get("random", {})]
    return [p for p in paths if p != SEED_PATH] or paths


def comparison_url(sweep: Sweep, group_by: str | None = None) -> str:
    """The comparison dashboard with the sweep's runs, grouped by a swept field (default: the first), which
    draws each configuration as the mean over its seeds with a band."""
    paths = swept_paths(sweep)
    group = group_by if group_by is not None else (paths[0] if paths else "")
    return f"{reverse('compare')}?{urlencode({'sweep': sweep.pk, 'group': group})}"


def comparison_urls(sweep: Sweep) -> list[tuple[str, str]]:
    """(swept field, dashboard grouped by it) for each swept field."""
    return [(path, comparison_url(sweep, path)) for path in swept_paths(sweep)]


@dataclass
class ConfigurationResult:
    configuration: int
    overrides: dict[str, Any]
    points: list[SweepPoint]
    #: benchmark -> the best avg@k of each of the configuration's runs that has one
    best: dict[str, list[float]]

    @property
    def summary(self) -> dict[str, dict[str, float | int]]:
        return {
            name: {"mean": sum(values) / len(values), "max": max(values), "runs": len(values)}
            for name, values in sorted(self.best.items())
        }


def configuration_results(sweep: Sweep) -> list[ConfigurationResult]:
    """Per configuration: its points and, per benchmark, each run's best avg@k (over its evaluations)."""
    points = list(sweep.points.select_related("run").order_by("index"))
    run_ids = [p.run_id for p in points if p.run_id]
    best_of_run: dict[int, dict[str, float]] = {}
    rows = (
        EvaluationResult.objects.filter(run_id__in=run_ids)
        .values("run_id", "benchmark")
        .annotate(best=Max("avg_at_k"))
    )
    for row in rows:
        best_of_run.setdefault(row["run_id"], {})[row["benchmark"]] = row["best"]
    results: dict[int, ConfigurationResult] = {}
    for point in points:
        overrides = {k: v for k, v in point.overrides.items() if k != SEED_PATH or SEED_PATH in swept_paths(sweep)}
        result = results.setdefault(
            point.configuration, ConfigurationResult(point.configuration, overrides, [], {})
        )
        result.points.append(point)
        for benchmark, value in best_of_run.get(point.run_id, {}).items():
            result.best.setdefault(benchmark, []).append(value)
    return list(results.values())
