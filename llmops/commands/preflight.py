"""`llmops preflight --stack ENV`: live, read-only checks with real credentials before `up`.

Every check runs and prints one line; a failure says what to run. Exit 1 when any fails.
`--before platform` checks only the account (identity, zones, GPU quotas, connection): the
image, registry and secrets checks need the platform's outputs and the publish step.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from llmops.commands.stack_args import add_stack_arguments, platform_config

if TYPE_CHECKING:
    from llmops.preflight.context import ClientFactory

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preflight", help="check an account and an environment live (read-only) before `up`",
        description="Checks, with the AWS credentials in the environment: caller identity and "
        "account, available zones, GPU vCPU quotas (on-demand and spot) against the pools' "
        "maximum, the GitHub connection, the platform image's tags in ECR, every model's "
        "registry stage or version, and the workloads stack's secrets. Writes nothing.")
    add_stack_arguments(parser, "environment to check")
    parser.add_argument("--before", choices=("platform", "workloads"), default="workloads",
                        help="which `up` comes next (default: workloads, every check)")
    parser.add_argument("--print-images", action="store_true",
                        help="print the platform image references (repository:tag) the environment "
                        "needs, one per line, and exit (the deploy workflow's publish job)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, make_client: ClientFactory | None = None) -> int:
    """`make_client` (service, region) -> client; boto3's default chain unless given."""
    from llmops.preflight.context import Context, boto3_clients
    from llmops.preflight.image import images
    from llmops.preflight.result import render
    from llmops.preflight.runner import ACCOUNT_CHECKS, WORKLOADS_CHECKS, run_checks
    from vocabulary.errors import LlmopsError

    context = Context(args.stack, platform_config(args), stacks_dir=args.stacks_dir,
                      make_client=make_client or boto3_clients)
    if args.print_images:
        try:
            print("\n".join(images(context)))
        except LookupError as exc:
            raise LlmopsError(f"no platform image repository for {args.stack}: {exc}") from None
        return 0
    checks = run_checks(context, ACCOUNT_CHECKS if args.before == "platform" else WORKLOADS_CHECKS)
    print(render(args.stack, checks))
    return EXIT_FAILED if any(not c.ok for c in checks) else 0
