"""`llmops policy`: the CrossGuard pack's rules, offline.

  llmops policy check --resources plan.json [--stack S]   evaluate a `llmops plan --json` file
  llmops policy config --stack S [--write]                the CLI's --policy-pack-config JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from policies.runner import Violation, evaluate, mandatory, render
from policies.settings import CONFIG_DIR, available_configs, load_config
from vocabulary.errors import LlmopsError
from vocabulary.strict_yaml import read_utf8

#: Exit status when a mandatory policy is violated (errors exit 1, bad stack config 2).
POLICY_FAILURE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "policy", help="evaluate the CrossGuard policy pack offline",
        description="The policy pack in policies/ evaluated without the Pulumi CLI.")
    commands = parser.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")

    check = commands.add_parser(
        "check", help="evaluate the policies on a plan written by `llmops plan --json`",
        description="Prints violations grouped by policy. Exits 3 when a mandatory policy is "
        "violated; advisory violations are printed only.")
    check.add_argument("--resources", type=Path, required=True, metavar="FILE",
                       help="plan JSON written by `llmops plan --stack <env> --json FILE`")
    check.add_argument("--stack", help="whose policies/config/<stack>.yaml to apply "
                       "(default: the stack recorded in the file)")
    check.add_argument("--json", type=Path, metavar="PATH", help="also write the violations as JSON")
    check.set_defaults(handler=run_check)

    config = commands.add_parser(
        "config", help="print (or --write) the --policy-pack-config JSON of a stack",
        description="policies/config/<stack>.json is generated from policies/config/<stack>.yaml "
        "for `pulumi preview --policy-pack policies --policy-pack-config ...`.")
    config.add_argument("--stack", required=True, help=f"one of {', '.join(available_configs())}")
    config.add_argument("--write", action="store_true", help="write policies/config/<stack>.json")
    config.set_defaults(handler=run_config)


def read_plan(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise LlmopsError(f"{path} does not exist; write it with `llmops plan --stack <env> "
                          f"--json {path}`")
    try:
        document = json.loads(read_utf8(path, str(path)))  # a directory, UTF-16: said so
    except json.JSONDecodeError as exc:
        raise LlmopsError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("resources"), list):
        raise LlmopsError(f"{path} has no `resources` list; is it a `llmops plan --json` file?")
    return document


def run_check(args: argparse.Namespace) -> int:
    document = read_plan(args.resources)
    stack = args.stack or document.get("stack")
    if not stack:
        raise LlmopsError(f"{args.resources} names no stack; pass --stack")
    violations = evaluate(document["resources"], stack)
    print(render(violations, stack=stack))
    if args.json:
        write_violations(args.json, violations)
    return POLICY_FAILURE if mandatory(violations) else 0


def write_violations(path: Path, violations: list[Violation]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([v.to_json() for v in violations], indent=2) + "\n")


def run_config(args: argparse.Namespace) -> int:
    text = load_config(args.stack).to_cli_json()
    if args.write:
        target = CONFIG_DIR / f"{args.stack}.json"
        target.write_text(text)
        print(f"wrote {target}")
    else:
        print(text, end="")
    return 0
