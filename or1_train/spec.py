"""The run spec: the one contract between the platform and the trainer.

A spec describes a whole run (model, dataset mix, stages, entropy control, loss, engines, evaluation,
checkpoints, resources). The browser's forms, the REST API and the `or1-train` CLI all validate with these
models, so a spec the browser accepts is one the trainer accepts.

Every error names the field path the user typed and the reason, in words a researcher understands, e.g.
``stages[1].max_response_tokens: must be >= stages[0] (16384)``. Use :func:`parse_spec` (or
:func:`validate_spec`) rather than ``RunSpec.model_validate`` directly to get errors in that form.

Where the Skywork-OR1 paper and its released scripts disagree, both are offered and the defaults follow the
released scripts (see ``docs/recipe.md``).

This module imports no torch: the web tier and ``or1-train validate`` stay light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]
Level = Annotated[int, Field(ge=1, le=8)]  # the synthetic task's levels (steps per problem)

#: LiveCodeBench problems the paper evaluates on: contest dates in [2024-08-01, 2025-02-01) (dossier §6.1).
LIVECODEBENCH_WINDOW = (date(2024, 8, 1), date(2025, 2, 1))

#: head dimensions the vLLM CPU attention backend accepts (runtime notes §1).
VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


class _Section(BaseModel):
    """Base for every spec section: unknown keys are errors, so a typo never silently becomes a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)


# --------------------------------------------------------------------------------------------- model


class ModelBootstrap(_Section):
    """How to build the model when ``model.path`` does not exist yet (the CPU demo).

    No pretrained weights can be downloaded on our CPU machines, so the demo builds a small Qwen2 model with a
    locally trained tokenizer and warm-starts it on worked solutions of the synthetic task, standing in for a
    distilled reasoning model (as R1-Distill is for the paper).
    """

    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 2
    num_kv_heads: PositiveInt = 1
    max_positions: PositiveInt = 512
    vocab_size: PositiveInt = 512
    distill_steps: NonNegativeInt = 200
    distill_levels: tuple[Level, Level] = (1, 4)
    distill_lr: Annotated[float, Field(gt=0)] = 3e-3
    distill_max_value: Annotated[int, Field(ge=40)] = Field(
        default=999, description="Largest value in the warm-up problems (the task's number range)."
    )
    distill_checked_share: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.0,
        description="Share of warm-start solutions that verify every step (about twice as long), so the model is "
        "sometimes verbose and a short stage has something to shorten, as R1-Distill's re-checking.",
    )
    seed: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


class ModelSpec(_Section):
    """The policy model: a local Hugging Face directory or a hub id, loaded by transformers and vLLM."""

    path: Annotated[str, Field(min_length=1)]
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    max_positions: PositiveInt | None = Field(
        default=None, description="The model's context window; when known, prompt + response must fit in it."
    )
    bootstrap: ModelBootstrap | None = None


# ---------------------------------------------------------------------------------------------- data


class SyntheticTask(_Section):
    """Generate the source's file from the shipped synthetic arithmetic task when it does not exist yet."""

    task: Literal["arith"] = "arith"
    num_problems: PositiveInt = 2000
    levels: tuple[Level, Level] = (1, 4)
    max_value: Annotated[int, Field(ge=40)] = Field(
        default=999, description="Every intermediate value stays in 0..max_value: smaller is easier."
    )
    seed: int = 0


class DifficultyFilter(_Section):
    """Keep problems whose offline pass count for ``model`` lies in [min, max] (OR1's released filter)."""

    model: Annotated[str, Field(min_length=1)]
    min: NonNegativeInt = 1
    max: NonNegativeInt = 15


class DataSource(_Section):
    """One dataset in the mix: a JSONL/Parquet file or a local Hugging Face dataset directory."""

    name: str | None = None
    path: Annotated[str, Field(min_length=1)]
    format: Literal["auto", "jsonl", "parquet", "hf", "or1"] = "auto"
    weight: Annotated[float, Field(gt=0.0)] = 1.0
    synthetic: SyntheticTask | None = None
    difficulty: DifficultyFilter | None = None

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).stem


class DataMix(_Section):
    """A weighted mix of sources. Weights are relative; ``percentages()`` gives what the browser shows."""

    sources: Annotated[list[DataSource], Field(min_length=1)]

    def percentages(self) -> list[float]:
        total = sum(s.weight for s in self.sources)
        return [100.0 * s.weight / total for s in self.sources]


# -------------------------------------------------------------------------------------------- stages


class Stage(_Section):
    """One stage of the context-length schedule (paper Tables 10-12: e.g. 8K -> 16K -> 32K)."""

    name: str | None = None
    steps: PositiveInt
    max_prompt_tokens: PositiveInt = 2048
    max_response_tokens: PositiveInt
    rollout_batch: PositiveInt = Field(description="Prompts sampled per step (D_R).")
    mini_batch: PositiveInt = Field(description="Prompts per SGD step (D_T); N_SGD = rollout_batch / mini_batch.")
    group_size: Annotated[int, Field(ge=2)] = Field(description="Responses per prompt.")
    temperature: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0
    top_p: Probability = 1.0

    @property
    def n_sgd(self) -> int:
        """SGD steps per rollout batch (on-policy when 1, as the paper recommends)."""
        return max(1, self.rollout_batch // self.mini_batch)


class StageTransition(_Section):
    """What carries over from one stage to the next (recorded in the run's events at each boundary)."""

    optimizer_state: bool = True
    entropy_coef: bool = True
    data_cursor: bool = True
    drop_solved_prompts: bool = Field(
        default=False,
        description="Drop prompts solved by every sample in the previous stage (paper §3.1; not in the released code).",
    )


# ------------------------------------------------------------------------------------------ entropy


class EntropyControl(_Section):
    """Adaptive entropy control (paper §3.2.5; released `EntController`).

    ``released-scripts``: delta 1e-4 capped at 5e-3, the gate lags one step and is strict (<).
    ``paper``: delta 5e-3, the gate uses the current step's entropy (<=).
    """

    enabled: bool = True
    target: Annotated[float, Field(gt=0.0)] = 0.2
    delta: Annotated[float, Field(gt=0.0)] = 1e-4
    initial_coef: Annotated[float, Field(ge=0.0)] = 0.0
    min_coef: Annotated[float, Field(ge=0.0)] = 0.0
    max_coef: Annotated[float, Field(ge=0.0)] = 5e-3
    variant: Literal["released-scripts", "paper"] = "released-scripts"
    signal: Literal["sampled-token-nll", "full-vocab-entropy"] = Field(
        default="sampled-token-nll",
        description="What the controller reads: -mean log p of sampled tokens (released) or full-vocab entropy.",
    )


# --------------------------------------------------------------------------------------------- loss


class LossSpec(_Section):
    """Token-level PPO-clip loss without KL by default (paper eq. 3.1)."""

    clip_low: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    clip_high: Annotated[float, Field(gt=0.0)] = 0.2
    aggregation: Literal["token-mean", "seq-mean-token-mean", "token-sum-norm"] = "token-mean"
    norm_constant: PositiveInt | None = Field(
        default=None,
        description="Denominator per sequence for token-sum-norm (Dr. GRPO); default: the stage's max response tokens.",
    )
    advantage_std: Literal["unbiased", "population", "none"] = "unbiased"
    kl_coef: Annotated[float, Field(ge=0.0)] = 0.0
    kl_estimator: Literal["k1", "k3"] = "k3"


class OptimSpec(_Section):
    """AdamW with a constant learning rate and optional linear warm-up (paper §8.1: 1e-6, no warm-up)."""

    lr: Annotated[float, Field(gt=0.0)] = 1e-6
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.01
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    grad_clip: Annotated[float, Field(gt=0.0)] = 1.0
    warmup_steps: NonNegativeInt = 0


class OnlineFilter(_Section):
    """Rejection of zero-advantage groups (all rewards equal), with an optional refill."""

    enabled: bool = True
    refill: bool = Field(default=False, description="Sample more prompts so the batch keeps its size (released: no).")
    max_refill_rounds: NonNegativeInt = 2


# ------------------------------------------------------------------------------------------ engines


class RolloutSpec(_Section):
    """The rollout engine: vLLM by default (vllm-cpu on CPUs), transformers `generate` as a fallback."""

    engine: Literal["vllm", "hf"] = "vllm"
    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    tensor_parallel_size: PositiveInt = 1
    enforce_eager: bool = True
    sleep_during_update: bool = Field(default=True, description="Free vLLM's memory during the update when colocated.")
    log_groups: NonNegativeInt = Field(
        default=4, description="Groups per step saved for the rollout browser; 0 = none."
    )


class EngineSpec(_Section):
    """The actor engine: plain torch, or DeepSpeed ZeRO for models that don't fit one device."""

    kind: Literal["torch", "deepspeed"] = "torch"
    zero_stage: Annotated[int, Field(ge=0, le=3)] = 0
    offload_optimizer: bool = False
    offload_params: bool = False
    bf16: bool = False
    gradient_checkpointing: bool = False
    max_tokens_per_micro_batch: PositiveInt | None = Field(
        default=None, description="Token budget per rank for packing micro-batches; default: one micro-batch."
    )


class RewardSpec(_Section):
    """Verifier settings: Math-Verify runs in a process pool because its timeouts use SIGALRM."""

    workers: PositiveInt = 2
    math_timeout_s: Annotated[float, Field(gt=0.0)] = 5.0
    code_timeout_s: Annotated[float, Field(gt=0.0)] = 6.0


# ------------------------------------------------------------------------------------------- eval


class EvalSet(_Section):
    """A held-out benchmark: a file in OR1's eval layout, any source the data loader reads, or a local copy of
    LiveCodeBench (``format: livecodebench``), cut to the contest dates of ``window``."""

    name: Annotated[str, Field(min_length=1)]
    path: Annotated[str, Field(min_length=1)]
    format: Literal["auto", "jsonl", "parquet", "hf", "or1", "livecodebench"] = "auto"
    synthetic: SyntheticTask | None = None
    limit: PositiveInt | None = Field(default=None, description="Evaluate only the first N problems.")
    window: tuple[date, date] | None = Field(
        default=None,
        description="livecodebench only: [start, end) of the contest dates; default the paper's "
        "2024-08-01 to 2025-02-01. Written into the frozen spec, so a result says which window it is.",
    )

    @model_validator(mode="after")
    def _paper_window(self) -> EvalSet:
        if self.format == "livecodebench" and self.window is None:
            self.window = LIVECODEBENCH_WINDOW
        return self


class EvaluationSpec(_Section):
    """avg@k and unbiased pass@k (the Codex estimator) every N steps and at the end."""

    sets: list[EvalSet] = Field(default_factory=list)
    k: PositiveInt = 8
    samples: PositiveInt | None = Field(
        default=None,
        description="Answers sampled per problem (n >= k): avg@k is their mean accuracy and pass@k the unbiased "
        "estimate from all n. Default: k.",
    )
    temperature: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0
    top_p: Probability = 1.0
    max_response_tokens: PositiveInt | None = Field(default=None, description="Default: the last stage's.")
    every_steps: NonNegativeInt = Field(default=20, description="0 = only at the start and the end.")
    at_start: bool = True


class CheckpointSpec(_Section):
    """Checkpoints every N steps, at each stage end and on SIGTERM; the newest K are kept."""

    every_steps: NonNegativeInt = 20
    keep_last: PositiveInt = 3


class ResourceSpec(_Section):
    """Where the run goes: a Celery worker on one host (``local``) or a Slurm cluster."""

    launcher: Literal["local", "slurm"] = "local"
    cluster: str | None = Field(default=None, description="Name of a registered Slurm cluster.")
    nodes: PositiveInt = 1
    gpus_per_node: NonNegativeInt = 0
    cpus_per_task: PositiveInt | None = None
    memory_gb: PositiveInt | None = None
    time_limit_minutes: PositiveInt | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    max_restarts: NonNegativeInt = Field(default=2, description="Relaunches with --resume after a lost worker or node.")


class RunSpec(_Section):
    """A whole run. ``parse_spec`` is the entry point that turns user input into one or readable errors."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    seed: int = 0
    model: ModelSpec
    data: DataMix
    stages: Annotated[list[Stage], Field(min_length=1)]
    transition: StageTransition = Field(default_factory=StageTransition)
    entropy: EntropyControl = Field(default_factory=EntropyControl)
    loss: LossSpec = Field(default_factory=LossSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    filter: OnlineFilter = Field(default_factory=OnlineFilter)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    checkpoints: CheckpointSpec = Field(default_factory=CheckpointSpec)
    resources: ResourceSpec = Field(default_factory=ResourceSpec)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RunSpec:
        problems = rule_violations(self)
        if problems:
            raise _RuleViolations(problems)
        return self

    # ---- derived facts the trainer and the platform both need

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_index_at(self, step: int) -> int:
        """The stage that global step ``step`` (0-based) belongs to; the last one past the end."""
        end = 0
        for i, stage in enumerate(self.stages):
            end += stage.steps
            if step < end:
                return i
        return len(self.stages) - 1

    def stage_start(self, index: int) -> int:
        """Global step at which stage ``index`` begins."""
        return sum(s.steps for s in self.stages[:index])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ------------------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class FieldError:
    """One problem with a spec: the dotted/indexed field path and the reason."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """Raised by :func:`parse_spec` with every problem found, each naming its field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class _RuleViolations(ValueError):
    """Carries cross-field problems through pydantic so their own field paths survive."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def field_path(loc: tuple[Any, ...]) -> str:
    """``('stages', 1, 'max_response_tokens')`` -> ``stages[1].max_response_tokens``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(err: dict[str, Any]) -> str:
    """Pydantic's messages reworded where a researcher would read them differently."""
    kind, ctx = err["type"], err.get("ctx", {})
    match kind:
        case "missing":
            return "is required"
        case "extra_forbidden":
            return "is not a known field (check the spelling)"
        case "greater_than":
            return f"must be > {ctx['gt']}"
        case "greater_than_equal":
            return f"must be >= {ctx['ge']}"
        case "less_than":
            return f"must be < {ctx['lt']}"
        case "less_than_equal":
            return f"must be <= {ctx['le']}"
        case "too_short" if "min_length" in ctx:
            return (
                f"must have at least {ctx['min_length']} item(s)"
                if ctx.get("actual_length") is not None
                else "is too short"
            )
        case "string_too_short":
            return "must not be empty"
        case "literal_error":
            return f"must be one of {ctx['expected']}"
        case "int_parsing" | "int_type" | "int_from_float":
            return "must be a whole number"
        case "float_parsing" | "float_type":
            return "must be a number"
        case "bool_parsing" | "bool_type":
            return "must be true or false"
        case "date_parsing" | "date_type" | "date_from_datetime_parsing" | "date_from_datetime_inexact":
            return "must be a date (YYYY-MM-DD)"
    return err["msg"][0].lower() + err["msg"][1:]


def _errors_from(exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors():
        original = err.get("ctx", {}).get("error")
        if isinstance(original, _RuleViolations):
            errors.extend(original.errors)
        else:
            errors.append(FieldError(field_path(err["loc"]), _reason(err)))
    return errors


def parse_spec(data: dict[str, Any]) -> RunSpec:
    """Validate ``data`` into a :class:`RunSpec` or raise :class:`SpecError` listing every problem."""
    if not isinstance(data, dict):
        raise SpecError([FieldError("", "a run spec must be a mapping of sections (model, data, stages, ...)")])
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_errors_from(exc)) from None


def validate_spec(data: dict[str, Any]) -> list[FieldError]:
    """Every problem with ``data``; an empty list means it is a valid spec."""
    try:
        parse_spec(data)
    except SpecError as exc:
        return exc.errors
    return []


def load_spec_file(path: str | Path) -> RunSpec:
    """Read a YAML or JSON spec file; an unreadable file is a SpecError too, never a traceback."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([FieldError("", f"cannot read {p}: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise SpecError([FieldError("", f"{p} is not UTF-8 text")]) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError(
            [FieldError("", f"{p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}")]
        ) from None
    return parse_spec(data)


def json_schema() -> dict[str, Any]:
    """The JSON schema of a run spec, for the browser's forms and the REST API."""
    return RunSpec.model_json_schema()


# ------------------------------------------------------------------------------------------- rules


def rule_violations(spec: RunSpec) -> list[FieldError]:
    """Cross-field rules that single fields cannot express, each with the path of the field to fix."""
    errors: list[FieldError] = []

    def add(path: str, message: str) -> None:
        errors.append(FieldError(path, message))

    boot = spec.model.bootstrap
    if boot is not None:
        if boot.hidden_size % boot.num_heads:
            add("model.bootstrap.num_heads", f"must divide hidden_size ({boot.hidden_size})")
        elif boot.head_dim not in VLLM_CPU_HEAD_DIMS:
            add(
                "model.bootstrap.num_heads",
                f"hidden_size / num_heads = {boot.head_dim} is a head size vLLM's CPU backend cannot run "
                f"(allowed: {', '.join(map(str, VLLM_CPU_HEAD_DIMS))})",
            )
        if boot.num_heads % boot.num_kv_heads:
            add("model.bootstrap.num_kv_heads", f"must divide num_heads ({boot.num_heads})")
        lo, hi = boot.distill_levels
        if lo > hi:
            add("model.bootstrap.distill_levels", f"first level ({lo}) must be <= last level ({hi})")

    max_positions = spec.model.max_positions or (boot.max_positions if boot else None)

    names = [s.display_name for s in spec.data.sources]
    for i, source in enumerate(spec.data.sources):
        if names.count(source.display_name) > 1 and names.index(source.display_name) != i:
            add(f"data.sources[{i}].name", f"'{source.display_name}' is used by another source; names must be unique")
        if source.synthetic is not None and source.synthetic.levels[0] > source.synthetic.levels[1]:
            add(f"data.sources[{i}].synthetic.levels", "first level must be <= last level")
        if source.difficulty is not None and source.difficulty.min > source.difficulty.max:
            add(f"data.sources[{i}].difficulty.min", f"must be <= difficulty.max ({source.difficulty.max})")

    for i, stage in enumerate(spec.stages):
        p = f"stages[{i}]"
        if stage.rollout_batch % stage.mini_batch:
            add(f"{p}.rollout_batch", f"must be a multiple of mini_batch ({stage.mini_batch})")
        if max_positions is not None and stage.max_prompt_tokens + stage.max_response_tokens > max_positions:
            add(
                f"{p}.max_response_tokens",
                f"max_prompt_tokens + max_response_tokens = {stage.max_prompt_tokens + stage.max_response_tokens} "
                f"exceeds the model's max positions ({max_positions})",
            )
        if i > 0:
            prev = spec.stages[i - 1]
            if stage.max_response_tokens < prev.max_response_tokens:
                add(f"{p}.max_response_tokens", f"must be >= stages[{i - 1}] ({prev.max_response_tokens})")

    ent = spec.entropy
    if not ent.min_coef <= ent.initial_coef <= ent.max_coef:
        add(
            "entropy.initial_coef",
            f"entropy.min_coef <= initial_coef <= max_coef must hold (got {ent.min_coef} <= {ent.initial_coef} "
            f"<= {ent.max_coef})",
        )

    if spec.engine.kind == "torch":
        if spec.engine.zero_stage:
            add("engine.zero_stage", "ZeRO stages need engine.kind 'deepspeed'")
        if spec.engine.offload_optimizer or spec.engine.offload_params:
            add("engine.offload_optimizer", "offloading needs engine.kind 'deepspeed'")

    res = spec.resources
    if res.nodes > 1 and res.launcher != "slurm":
        add("resources.nodes", "more than one node needs launcher 'slurm'")

    names = [s.name for s in spec.evaluation.sets]
    for i, eval_set in enumerate(spec.evaluation.sets):
        if names.count(eval_set.name) > 1 and names.index(eval_set.name) != i:
            add(f"evaluation.sets[{i}].name", f"'{eval_set.name}' is used by another eval set; names must be unique")
        if eval_set.window is not None and eval_set.format != "livecodebench":
            add(f"evaluation.sets[{i}].window", "only a set of format 'livecodebench' has a date window")
        elif eval_set.window is not None and eval_set.window[0] >= eval_set.window[1]:
            start, end = (d.isoformat() for d in eval_set.window)
            add(f"evaluation.sets[{i}].window", f"the start ({start}) must be before the end ({end})")
    if spec.evaluation.samples is not None and spec.evaluation.samples < spec.evaluation.k:
        add("evaluation.samples", f"must be >= evaluation.k ({spec.evaluation.k}): pass@k needs at least k answers")
    eval_tokens = spec.evaluation.max_response_tokens
    if (
        eval_tokens is not None
        and max_positions is not None
        and eval_tokens + spec.stages[-1].max_prompt_tokens > max_positions
    ):
        add(
            "evaluation.max_response_tokens",
            f"with the last stage's max_prompt_tokens this exceeds the model's max positions ({max_positions})",
        )
    return errors
