"""`llmops`: the platform's command line. Each subcommand lives in its own module under
llmops/commands and registers itself through `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from llmops.errors import LlmopsError
from stacks.config import ConfigError

#: Subcommand modules, in the order `llmops --help` lists them.
COMMANDS = ("llmops.commands.plan", "llmops.commands.policy", "llmops.commands.registry",
            "llmops.commands.gateway",
            "llmops.commands.canary",
            "llmops.commands.evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmops", description="Plan, check and operate the LLM serving platform.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LlmopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
