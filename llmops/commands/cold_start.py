"""`llmops cold-start --stack ENV`: how long each model takes to serve on a fresh and on a warm
node, and the startup-probe and await budgets the stack derives from it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmops.offline.cold_start_report import model_starts, render
from llmops.offline.stackfile import STACKS_DIR, available_stacks, read_stack_config
from stacks.config import PRODUCT, parse_platform_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cold-start", help="per model: fresh- and warm-node start, probe and await budgets",
        description="Estimates each model's start on the smallest node of its GPU shape from the "
        "facts the stack uses (image and weights sizes, fetch rate, GPU load rate, node boot): "
        "the phases of a fresh node's start, the warm-node total, the startup-probe and await "
        "budgets the pods get, and the room its weights take in the node cache.")
    parser.add_argument("--stack", required=True,
                        help=f"environment ({', '.join(available_stacks())})")
    parser.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, metavar="DIR",
                        help="where the Pulumi.<stack>.yaml files are (default: stacks/)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    file = read_stack_config(args.stack, args.stacks_dir)
    config = parse_platform_config(file.values, project=PRODUCT, stack=args.stack, source=file.source)
    rows = model_starts(config)
    print(json.dumps([r.to_json() for r in rows], indent=2) if args.json else render(config, rows))
    return 0
