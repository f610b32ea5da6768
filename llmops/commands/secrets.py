"""`llmops secrets --stack ENV`: the secrets a stack reads, which are set, how to set the rest.

Offline the plan stands in a placeholder for every secret (it cannot decrypt `secure:`
values and does not need to); a real deploy fails on the first missing one. This command
answers "what do I still have to set?" before that deploy, from the stack files alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmops.commands.stack_args import add_stack_arguments
from llmops.offline.secrets import SecretProblems, SecretStatus, secret_statuses, set_command
from vocabulary.config import PRODUCT, parse_platform_config
from vocabulary.stackfile import STACKS_DIR, read_stack_config, read_workloads_config

#: Exit status of `--check` when a secret is missing (like any other error).
MISSING = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "secrets", help="list the secrets a stack needs, which are set, and how to set the rest",
        description="Reads stacks/Pulumi.<stack>.yaml (which receivers need which secret) and "
        "stacks/workloads/Pulumi.<stack>.yaml (where secrets are set, encrypted). Values are "
        "never read or printed.")
    add_stack_arguments(parser)
    parser.add_argument("--check", action="store_true",
                        help=f"exit {MISSING} when any secret is missing (for CI before `pulumi up`)")
    parser.set_defaults(handler=run)


def stack_secrets(stack: str, stacks_dir: Path = STACKS_DIR) -> list[SecretStatus]:
    """The environment's secrets and their status; bad config raises `ConfigError` as in plan."""
    environment = read_stack_config(stack, stacks_dir)
    workloads = read_workloads_config(stack, stacks_dir)
    problems = SecretProblems(environment, workloads)
    with problems.reported_with_config_errors():
        config = parse_platform_config({**environment.values, **problems.workloads_values},
                                       project=PRODUCT, stack=stack, source=environment.source)
    problems.check(config)
    return secret_statuses(config, workloads)


def render(stack: str, statuses: list[SecretStatus]) -> str:
    missing = [s for s in statuses if not s.is_set]
    lines = [f"Secrets of stack {stack!r}: {len(statuses) - len(missing)} of {len(statuses)} set "
             "(the workloads stack reads them; values are never shown)"]
    width = max(len(s.key) for s in statuses)
    for status in statuses:
        state = "set" if status.is_set else "MISSING"
        lines.append(f"  {status.key:<{width}}  {state:<7}  {status.purpose}")
        if not status.is_set:
            lines.append(f"  {'':<{width}}  set it:  {set_command(status.key, stack)}")
    if missing:
        lines += ["", f"{len(missing)} missing: `pulumi up` of the workloads stack fails until they "
                  "are set; `llmops plan` uses placeholders for them."]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    statuses = stack_secrets(args.stack, args.stacks_dir)
    print(render(args.stack, statuses))
    return MISSING if args.check and any(not s.is_set for s in statuses) else 0
