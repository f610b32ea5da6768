"""The `--stack ENV [--stacks-dir DIR]` pair every environment command takes, and the
platform config it names, said once."""

from __future__ import annotations

import argparse
from pathlib import Path

from vocabulary.config import PRODUCT, PlatformConfig, parse_platform_config
from vocabulary.stackfile import STACKS_DIR, available_stacks, read_stack_config


def add_stack_arguments(parser: argparse.ArgumentParser, what: str = "environment") -> None:
    parser.add_argument("--stack", required=True, help=f"{what} ({', '.join(available_stacks())})")
    parser.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, metavar="DIR",
                        help="where the Pulumi.<stack>.yaml files are (default: stacks/)")


def platform_config(args: argparse.Namespace) -> PlatformConfig:
    """The environment file's config, validated (a `ConfigError` lists every problem)."""
    file = read_stack_config(args.stack, args.stacks_dir)
    return parse_platform_config(file.values, project=PRODUCT, stack=args.stack, source=file.source)
