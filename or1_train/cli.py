"""`or1-train`: the trainer's command line. Errors are one clear line (or one per spec problem), never a traceback."""

from __future__ import annotations

import argparse
import json
import sys

from or1_train.spec import SpecError, json_schema, load_spec_file

EXIT_INVALID = 2


def _validate(args: argparse.Namespace) -> int:
    load_spec_file(args.spec)
    print("OK")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="or1-train", description="Skywork-OR1 (MAGIC) RL trainer")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check a run spec; prints OK or every error with its field path")
    validate.add_argument("spec", help="run spec file (YAML or JSON)")
    validate.set_defaults(func=_validate)

    schema = sub.add_parser("schema", help="print the run spec's JSON schema")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
