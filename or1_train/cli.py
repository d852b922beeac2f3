"""`or1-train`: the trainer's command line. Errors are one clear line (or one per spec problem), never a traceback.

A crash inside a run still prints one line; the full traceback goes to ``<run dir>/error.txt`` for debugging.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from or1_train.spec import SpecError, json_schema, load_spec_file

EXIT_FAILED = 1
EXIT_INVALID = 2
SPEC_FILE = "spec.yaml"


def _validate(args: argparse.Namespace) -> int:
    load_spec_file(args.spec)
    print("OK")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    from or1_train.trainer import Trainer

    spec = load_spec_file(args.spec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / SPEC_FILE).exists() or not args.resume:
        (out / SPEC_FILE).write_text(spec.to_yaml())
    try:
        return Trainer(spec, out, resume=args.resume, sinks=_extra_sinks()).run()
    except Exception:
        (out / "error.txt").write_text(traceback.format_exc())
        raise


def _extra_sinks() -> list:
    """The platform's ingestion sink when the launcher set its URL and token (see or1_train.ingest)."""
    import os

    url, token = os.environ.get("OR1_INGEST_URL"), os.environ.get("OR1_INGEST_TOKEN")
    if not url or not token:
        return []
    from or1_train.ingest import HttpSink

    return [HttpSink(url, token)]


def _init_model(args: argparse.Namespace) -> int:
    from or1_train.data.synthetic import corpus_for_tokenizer
    from or1_train.model import ModelInitConfig, init_model

    config = ModelInitConfig(
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        max_positions=args.max_positions,
        vocab_size=args.vocab_size,
        seed=args.seed,
    )
    path = init_model(args.out, config, corpus_for_tokenizer(args.seed, 4000))
    print(f"model written to {path}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from or1_train.distill import distill

    data = Path(args.data) if args.data else None
    if data is None:
        from or1_train.data.synthetic import write_dataset

        lo, hi = (int(x) for x in args.levels.split("-"))
        data = write_dataset(Path(args.model) / "distill.jsonl", 4000, (lo, hi), args.seed + 7, with_solutions=True)
    result = distill(
        args.model,
        data,
        args.out or args.model,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    print(json.dumps(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from or1_train.evaluate_cli import evaluate_model

    spec = load_spec_file(args.spec)
    results = evaluate_model(spec, args.model or spec.model.path, engine=args.engine)
    for r in results:
        print(r.summary())
    if args.out:
        Path(args.out).write_text(json.dumps([vars(r) for r in results], indent=2))
    return 0


def _estimate_difficulty(args: argparse.Namespace) -> int:
    """SPEC_OR_MODEL: a run spec (its model, dtype, engine, reward and last stage's lengths) or a model dir."""
    from or1_train.difficulty import estimate_difficulty

    target = Path(args.spec_or_model)
    options: dict = {"dtype": args.dtype or "bfloat16", "engine": args.engine or "vllm", "seed": args.seed or 0}
    model_dir = target
    if target.is_file():
        spec = load_spec_file(target)
        model_dir = Path(spec.model.path)
        options.update(
            dtype=args.dtype or spec.model.dtype, engine=args.engine or spec.rollout.engine, reward=spec.reward,
            max_tokens=spec.stages[-1].max_response_tokens, max_prompt_tokens=spec.stages[-1].max_prompt_tokens,
            seed=spec.seed if args.seed is None else args.seed,
        )
    if args.max_tokens:
        options["max_tokens"] = args.max_tokens
    report = estimate_difficulty(
        model_dir, args.data, args.out, n=args.n, model_name=args.model_name, data_format=args.format,
        filtered=args.filtered, temperature=args.temperature, top_p=args.top_p, limit=args.limit, **options,
    )
    print(report.to_json())
    if args.report:
        Path(args.report).write_text(report.to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="or1-train", description="Skywork-OR1 (MAGIC) RL trainer")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a run spec; prints OK or every error with its field path")
    p.add_argument("spec", help="run spec file (YAML or JSON)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("schema", help="print the run spec's JSON schema")
    p.set_defaults(func=_schema)

    p = sub.add_parser("run", help="train a spec; writes metrics, events and checkpoints into --out")
    p.add_argument("spec")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in --out")
    p.set_defaults(func=_run)

    p = sub.add_parser("init-model", help="build a small Qwen2 model with a locally trained tokenizer (HF format)")
    p.add_argument("out")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--kv-heads", type=int, default=1)
    p.add_argument("--max-positions", type=int, default=512)
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_init_model)

    p = sub.add_parser("distill", help="supervised warm start on worked solutions (any HF causal LM directory)")
    p.add_argument("model")
    p.add_argument("--data", help="JSONL/Parquet rows with a `solution` field; default: synthetic arithmetic")
    p.add_argument("--levels", default="1-4", help="synthetic levels when --data is not given, e.g. 1-4")
    p.add_argument("--out", help="output directory (default: overwrite MODEL)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_distill)

    p = sub.add_parser("eval", help="avg@k and pass@k of a model or checkpoint on the spec's eval sets")
    p.add_argument("spec")
    p.add_argument("--model", help="HF model directory or checkpoint model/ dir (default: the spec's model)")
    p.add_argument("--engine", choices=["vllm", "hf"], help="rollout engine (default: the spec's)")
    p.add_argument("--out", help="write the results as JSON here")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "estimate-difficulty",
        help="sample N answers per problem; write pass counts and the problems solved 1..N-1 times",
    )
    p.add_argument("spec_or_model", metavar="SPEC_OR_MODEL", help="run spec file, or an HF model directory")
    p.add_argument("--data", required=True, help="dataset (JSONL, Parquet, HF directory) to estimate")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "hf", "or1"])
    p.add_argument("--n", type=int, default=16, help="samples per problem (OR1: 16 math, 8 code)")
    p.add_argument("--out", required=True, help="JSONL of every problem with its pass count")
    p.add_argument("--filtered", help="JSONL of the problems solved 1..N-1 times (default: OUT.filtered.jsonl)")
    p.add_argument("--model-name", help="key under extra_info.model_difficulty (default: the model dir's name)")
    p.add_argument("--engine", choices=["vllm", "hf"])
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--max-tokens", type=int, help="response tokens (default: the spec's last stage, else 32768)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--limit", type=int, help="only the first N problems")
    p.add_argument("--report", help="also write the report (histogram of pass counts, kept, paths) as JSON here")
    p.set_defaults(func=_estimate_difficulty)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one clear line, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
