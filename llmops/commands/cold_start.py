"""`llmops cold-start --stack ENV`: how long each model takes to serve on a fresh and on a warm
node, and the startup-probe and await budgets the stack derives from it."""

from __future__ import annotations

import argparse
import json

from llmops.commands.stack_args import add_stack_arguments, platform_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cold-start", help="per model: fresh- and warm-node start, probe and await budgets",
        description="Estimates each model's start on the smallest node of its GPU shape from the "
        "facts the stack uses (image and weights sizes, fetch rate, GPU load rate, node boot): "
        "the phases of a fresh node's start, the warm-node total, the startup-probe and await "
        "budgets the pods get, and the room its weights take in the node cache.")
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # here, not at import: the report pulls in the components (pulumi_kubernetes, ~150 ms)
    # and every llmops command, the pods' fetch and hold included, builds this parser
    from llmops.offline.cold_start_report import model_starts, render

    config = platform_config(args)
    rows = model_starts(config)
    print(json.dumps([r.to_json() for r in rows], indent=2) if args.json else render(config, rows))
    return 0
