"""Every rule of the run spec, with the exact error text a researcher sees."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from or1_train.spec import (
    FieldError,
    SpecError,
    json_schema,
    load_spec_file,
    parse_spec,
    validate_spec,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def base_spec() -> dict:
    return {
        "name": "t",
        "model": {"path": "m", "max_positions": 4096},
        "data": {"sources": [{"path": "a.jsonl", "weight": 3}, {"path": "b.jsonl", "weight": 1}]},
        "stages": [
            {
                "steps": 5,
                "max_prompt_tokens": 512,
                "max_response_tokens": 1024,
                "rollout_batch": 8,
                "mini_batch": 4,
                "group_size": 4,
            },
            {
                "steps": 5,
                "max_prompt_tokens": 512,
                "max_response_tokens": 2048,
                "rollout_batch": 8,
                "mini_batch": 8,
                "group_size": 8,
            },
        ],
    }


def errors_of(spec: dict) -> list[str]:
    return [str(e) for e in validate_spec(spec)]


def with_(path: str, value, spec: dict | None = None) -> dict:
    """Copy of the base spec with one dotted/indexed path set."""
    spec = copy.deepcopy(spec or base_spec())
    node = spec
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[parts[-1]] = value
    return spec


def test_base_spec_is_valid_and_has_defaults_from_the_released_scripts():
    spec = parse_spec(base_spec())
    assert spec.total_steps == 10
    assert [s.n_sgd for s in spec.stages] == [2, 1]
    assert spec.data.percentages() == [75.0, 25.0]
    assert spec.entropy.delta == 1e-4 and spec.entropy.max_coef == 5e-3 and spec.entropy.target == 0.2
    assert spec.entropy.variant == "released-scripts" and spec.entropy.signal == "sampled-token-nll"
    assert spec.loss.kl_coef == 0.0 and spec.loss.clip_low == spec.loss.clip_high == 0.2
    assert spec.optim.lr == 1e-6 and spec.optim.warmup_steps == 0
    assert spec.rollout.engine == "vllm" and spec.engine.kind == "torch"
    assert spec.resources.launcher == "local"
    assert spec.stage_index_at(0) == 0 and spec.stage_index_at(4) == 0 and spec.stage_index_at(5) == 1
    assert spec.stage_index_at(99) == 1 and spec.stage_start(1) == 5


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("stages[1].max_response_tokens", 512, "stages[1].max_response_tokens: must be >= stages[0] (1024)"),
        ("stages[0].mini_batch", 3, "stages[0].rollout_batch: must be a multiple of mini_batch (3)"),
        (
            "stages[1].max_response_tokens",
            4000,
            "stages[1].max_response_tokens: max_prompt_tokens + max_response_tokens = 4512 exceeds the model's "
            "max positions (4096)",
        ),
        (
            "entropy.initial_coef",
            0.01,
            "entropy.initial_coef: entropy.min_coef <= initial_coef <= max_coef must hold (got 0.0 <= 0.01 <= 0.005)",
        ),
        (
            "entropy.min_coef",
            0.001,
            "entropy.initial_coef: entropy.min_coef <= initial_coef <= max_coef must hold (got 0.001 <= 0.0 <= 0.005)",
        ),
        ("engine.zero_stage", 2, "engine.zero_stage: ZeRO stages need engine.kind 'deepspeed'"),
        ("engine.offload_optimizer", True, "engine.offload_optimizer: offloading needs engine.kind 'deepspeed'"),
        ("resources.nodes", 2, "resources.nodes: more than one node needs launcher 'slurm'"),
        ("data.sources[1].name", "a", "data.sources[1].name: 'a' is used by another source; names must be unique"),
        (
            "data.sources[0].synthetic",
            {"levels": [5, 2]},
            "data.sources[0].synthetic.levels: first level must be <= last level",
        ),
        (
            "data.sources[0].difficulty",
            {"model": "m", "min": 9, "max": 3},
            "data.sources[0].difficulty.min: must be <= difficulty.max (3)",
        ),
        (
            "model.bootstrap",
            {"hidden_size": 64, "num_heads": 4},
            "model.bootstrap.num_heads: hidden_size / num_heads = 16 is a head size vLLM's CPU backend cannot run "
            "(allowed: 32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)",
        ),
        (
            "model.bootstrap",
            {"hidden_size": 64, "num_heads": 3},
            "model.bootstrap.num_heads: must divide hidden_size (64)",
        ),
        (
            "model.bootstrap",
            {"hidden_size": 128, "num_heads": 4, "num_kv_heads": 3},
            "model.bootstrap.num_kv_heads: must divide num_heads (4)",
        ),
        (
            "model.bootstrap",
            {"distill_levels": [4, 1]},
            "model.bootstrap.distill_levels: first level (4) must be <= last level (1)",
        ),
        (
            "evaluation.sets",
            [{"name": "e", "path": "x"}, {"name": "e", "path": "y"}],
            "evaluation.sets[1].name: 'e' is used by another eval set; names must be unique",
        ),
        (
            "evaluation.max_response_tokens",
            4000,
            "evaluation.max_response_tokens: with the last stage's max_prompt_tokens this exceeds the model's max "
            "positions (4096)",
        ),
    ],
)
def test_cross_field_rules_name_the_field_and_the_reason(path, value, expected):
    assert expected in errors_of(with_(path, value))


def test_bootstrap_max_positions_counts_as_the_models_when_none_is_given():
    spec = with_("model", {"path": "m", "bootstrap": {"max_positions": 256}})
    assert (
        "stages[0].max_response_tokens: max_prompt_tokens + max_response_tokens = 1536 exceeds the model's max "
        "positions (256)" in errors_of(spec)
    )


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("stages[0].steps", 0, "stages[0].steps: must be > 0"),
        ("stages[0].group_size", 1, "stages[0].group_size: must be >= 2"),
        ("stages[0].temperature", 0, "stages[0].temperature: must be > 0.0"),
        ("stages[0].top_p", 1.5, "stages[0].top_p: must be <= 1.0"),
        ("stages[0].rollout_batch", "lots", "stages[0].rollout_batch: must be a whole number"),
        ("stages", [], "stages: must have at least 1 item(s)"),
        ("data.sources[0].weight", 0, "data.sources[0].weight: must be > 0.0"),
        ("data.sources[0].weight", -1, "data.sources[0].weight: must be > 0.0"),
        ("data.sources", [], "data.sources: must have at least 1 item(s)"),
        ("model.path", "", "model.path: must not be empty"),
        ("model.dtype", "fp8", "model.dtype: must be one of 'float32', 'bfloat16' or 'float16'"),
        ("entropy.variant", "mine", "entropy.variant: must be one of 'released-scripts' or 'paper'"),
        ("entropy.signal", "x", "entropy.signal: must be one of 'sampled-token-nll' or 'full-vocab-entropy'"),
        ("entropy.target", 0, "entropy.target: must be > 0.0"),
        ("entropy.enabled", "maybe", "entropy.enabled: must be true or false"),
        ("loss.clip_low", 1.0, "loss.clip_low: must be < 1.0"),
        (
            "loss.aggregation",
            "mean",
            "loss.aggregation: must be one of 'token-mean', 'seq-mean-token-mean' or 'token-sum-norm'",
        ),
        ("loss.kl_estimator", "k2", "loss.kl_estimator: must be one of 'k1' or 'k3'"),
        ("loss.kl_coef", -0.1, "loss.kl_coef: must be >= 0.0"),
        ("optim.lr", 0, "optim.lr: must be > 0.0"),
        ("rollout.engine", "sglang", "rollout.engine: must be one of 'vllm' or 'hf'"),
        ("engine.kind", "fsdp", "engine.kind: must be one of 'torch' or 'deepspeed'"),
        ("engine.zero_stage", 4, "engine.zero_stage: must be <= 3"),
        ("evaluation.k", 0, "evaluation.k: must be > 0"),
        ("checkpoints.keep_last", 0, "checkpoints.keep_last: must be > 0"),
        ("resources.launcher", "k8s", "resources.launcher: must be one of 'local' or 'slurm'"),
        ("resources.gpus_per_node", -1, "resources.gpus_per_node: must be >= 0"),
        ("stages[0].max_respons_tokens", 5, "stages[0].max_respons_tokens: is not a known field (check the spelling)"),
    ],
)
def test_field_rules_name_the_field_and_the_reason(path, value, expected):
    assert expected in errors_of(with_(path, value))


def test_missing_sections_are_each_reported():
    assert errors_of({"name": "x"}) == ["model: is required", "data: is required", "stages: is required"]


def test_every_error_is_reported_at_once_not_just_the_first():
    spec = with_("stages[1].max_response_tokens", 512, with_("stages[0].mini_batch", 3))
    assert len(validate_spec(spec)) == 2


def test_parse_spec_raises_spec_error_with_field_errors():
    with pytest.raises(SpecError) as exc:
        parse_spec(with_("stages[0].steps", -1))
    assert exc.value.errors == [FieldError("stages[0].steps", "must be > 0")]
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_spec(["not", "a", "spec"])  # type: ignore[arg-type]


def test_spec_round_trips_through_yaml(tmp_path):
    spec = parse_spec(base_spec())
    path = tmp_path / "spec.yaml"
    path.write_text(spec.to_yaml())
    assert load_spec_file(path) == spec


def test_unreadable_and_malformed_files_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [unclosed")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_spec_file(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(SpecError, match="is not valid JSON"):
        load_spec_file(bad_json)


def test_json_schema_exports_every_section_with_defaults():
    schema = json_schema()
    props = schema["properties"]
    for section in (
        "model",
        "data",
        "stages",
        "entropy",
        "loss",
        "rollout",
        "engine",
        "evaluation",
        "checkpoints",
        "resources",
        "seed",
    ):
        assert section in props
    entropy = schema["$defs"]["EntropyControl"]["properties"]
    assert entropy["delta"]["default"] == 1e-4 and entropy["variant"]["enum"] == ["released-scripts", "paper"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    load_spec_file(path)


def test_examples_reproduce_the_paper_stage_tables():
    tables = {
        "or1-math-7b.yaml": [
            (740, 8192, 256, 128, 16),
            (1000, 16384, 256, 128, 16),
            (340, 32768, 256, 128, 16),
            (80, 32768, 128, 64, 64),
        ],
        "or1-7b.yaml": [(660, 16384, 256, 256, 16), (660, 32768, 160, 160, 32)],
        "or1-32b.yaml": [(760, 16384, 256, 256, 16), (370, 24576, 160, 160, 32)],
    }
    for name, rows in tables.items():
        spec = load_spec_file(ROOT / "examples" / name)
        got = [(s.steps, s.max_response_tokens, s.rollout_batch, s.mini_batch, s.group_size) for s in spec.stages]
        assert got == rows, name
        assert spec.entropy.target == 0.2 and spec.loss.kl_coef == 0 and spec.optim.lr == 1e-6


def test_cli_validate_prints_ok_or_every_error_with_exit_code_2(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "or1_train", "validate", str(ROOT / "examples" / "cpu-demo.yaml")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "OK"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nmodel: {path: m}\ndata: {sources: [{path: a, weight: 0}]}\n"
        "stages: [{steps: 1, max_response_tokens: 8, rollout_batch: 3, mini_batch: 2, group_size: 2}]\n"
    )
    res = subprocess.run([sys.executable, "-m", "or1_train", "validate", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.splitlines() == ["error: data.sources[0].weight: must be > 0.0"]
    assert "Traceback" not in res.stderr


def test_spec_module_imports_no_torch():
    code = "import sys, or1_train.spec, or1_train.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
