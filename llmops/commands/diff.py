"""`llmops diff A B`: what changes between two plans, by resource and property.

A and B are each a plan JSON file (`llmops plan --json`) or a stack name (planned now), so
`llmops diff old.json dev` reviews a change and `llmops diff dev prod` shows how two
environments differ.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llmops.offline.plan import run_plan
from llmops.offline.plan_diff import diff_plans, render
from vocabulary.errors import LlmopsError
from vocabulary.stackfile import STACKS_DIR, available_stacks, display_path
from vocabulary.strict_yaml import read_utf8


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diff", help="compare two plans (JSON files or stack names) by resource and property",
        description="Matches resources by (stack, type, name) and compares their inputs and "
        "options by property path; JSON inside strings (IAM policies) is compared by path too. "
        "Each plan's stack name is shown as <env>, so `llmops diff dev prod` shows real "
        "differences. Secrets are compared masked.")
    parser.add_argument("before", metavar="A", help="plan JSON file or stack name")
    parser.add_argument("after", metavar="B", help="plan JSON file or stack name")
    parser.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, metavar="DIR",
                        help="where the Pulumi.<stack>.yaml files are (default: stacks/)")
    parser.set_defaults(handler=run)


def load(source: str, stacks_dir: Path) -> dict[str, Any]:
    """A plan document from a file, or from planning the stack of that name."""
    path = Path(source)
    if path.is_file():
        try:
            document = json.loads(read_utf8(path, display_path(path)))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LlmopsError(f"{display_path(path)} is not JSON: {exc}") from None
        if not (isinstance(document, dict) and isinstance(document.get("resources"), list)
                and isinstance(document.get("stack"), str)):
            raise LlmopsError(f"{display_path(path)} is not a plan: expected the JSON "
                              "`llmops plan --json` writes (stack, resources, outputs)")
        return document
    stacks = available_stacks(stacks_dir)
    if source in stacks:
        return run_plan(source, stacks_dir=stacks_dir).to_json()
    if path.is_dir():
        raise LlmopsError(f"{display_path(path)} is a directory, not a plan JSON file nor a stack; "
                          f"stacks: {', '.join(stacks)}")
    raise LlmopsError(f"{source!r} is neither a plan JSON file nor a stack; stacks: "
                      f"{', '.join(stacks) or 'none'}")


def run(args: argparse.Namespace) -> int:
    before = load(args.before, args.stacks_dir)
    after = load(args.after, args.stacks_dir)
    print(render(diff_plans(before, after)))
    return 0
